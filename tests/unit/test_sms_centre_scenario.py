"""The scenario's `sms_centre` section: throttling spells, dropped
connections, undeliverable numbers, validated up front."""

from __future__ import annotations

import re

import pytest

from simulators.scenario import SmsCentreBehaviour, Throttle, parse_scenario


def test_the_section_and_its_defaults():
    assert parse_scenario({}).sms_centre == SmsCentreBehaviour()
    behaviour = parse_scenario(
        {
            "sms_centre": {
                "throttle": [{"after": 30, "for_ms": 1500}],
                "drop_at": [150],
                "max_per_second": 100,
                "undeliverable": ["13800138000"],
                "receipt_delay_ms": 200,
                "fail_rate": 0.1,
            }
        }
    ).sms_centre
    assert behaviour.throttle == (Throttle(30, 1500),) and behaviour.drop_at == (150,)
    assert behaviour.undeliverable == ("13800138000",) and behaviour.max_per_second == 100
    assert behaviour.receipt_delay_ms == 200 and behaviour.fail_rate == 0.1


@pytest.mark.parametrize(
    "section,reason",
    [
        ({"throttle": {"after": 1}}, "sms_centre.throttle: must be a list"),
        ({"throttle": [{"after": 1}]}, "sms_centre.throttle[0].for_ms"),
        ({"throttle": [{"after": 1, "for_ms": 5, "every": 2}]}, "unknown field(s) every"),
        ({"drop_at": [-1]}, "sms_centre.drop_at[0]"),
        ({"undeliverable": ["12345"]}, "sms_centre.undeliverable[0]"),
        ({"receipt_delay": 5}, "unknown field(s) receipt_delay"),
    ],
)
def test_mistakes_are_named(section, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_scenario({"sms_centre": section})


def test_the_receipt_habits_and_their_defaults():
    default = parse_scenario({}).sms_centre
    assert (default.receipt_id_format, default.receipt_tlvs, default.receipts) == ("same", True, "each_part")
    assert (default.receipt_before_resp, default.message_id_wrap) == (False, 0)
    habits = parse_scenario(
        {
            "sms_centre": {
                "receipt_id_format": "decimal",
                "receipt_tlvs": False,
                "receipts": "last_part",
                "receipt_before_resp": True,
                "message_id_wrap": 3,
            }
        }
    ).sms_centre
    assert (habits.receipt_id_format, habits.receipt_tlvs, habits.receipts) == ("decimal", False, "last_part")
    assert (habits.receipt_before_resp, habits.message_id_wrap) == (True, 3)


@pytest.mark.parametrize(
    "section,reason",
    [
        ({"receipt_id_format": "lower"}, "sms_centre.receipt_id_format: 'lower' is not one of same decimal"),
        ({"receipt_id_format": 8}, "sms_centre.receipt_id_format: 8 is not one of"),
        ({"receipt_tlvs": "yes"}, "sms_centre.receipt_tlvs: must be true or false"),
        ({"receipts": "every_part"}, "sms_centre.receipts: 'every_part' is not one of each_part first_part"),
        ({"receipt_before_resp": 1}, "sms_centre.receipt_before_resp: must be true or false"),
        ({"message_id_wrap": -1}, "sms_centre.message_id_wrap: must be a non-negative integer"),
        ({"message_id_wrap": True}, "sms_centre.message_id_wrap: must be a non-negative integer"),
        ({"message_id_wrap": 1 << 32}, "sms_centre.message_id_wrap: must be 0 (ids never repeat) or from 1 to"),
    ],
)
def test_bad_receipt_habits_are_refused_with_the_knob_named(section, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_scenario({"sms_centre": section})


def test_how_the_centre_writes_its_ids_and_which_parts_get_receipts():
    from simulators.sms_centre import Concatenation, gets_receipt, written_id

    assert written_id("d2b5e44", "same") == "d2b5e44"
    assert written_id("d2b5e44", "decimal") == "0220945988"  # the example: 0x0D2B5E44
    assert written_id("d2b5e44", "hex_upper_padded") == "0D2B5E44"
    assert written_id("d2b5e44", "upper") == "D2B5E44"
    parts = [Concatenation(7, 3, seq) for seq in (1, 2, 3)]
    assert [gets_receipt(c, "each_part") for c in parts] == [True, True, True]
    assert [gets_receipt(c, "first_part") for c in parts] == [True, False, False]
    assert [gets_receipt(c, "last_part") for c in parts] == [False, False, True]
    assert [gets_receipt(c, "none") for c in parts] == [False, False, False]
    assert gets_receipt(None, "last_part") and not gets_receipt(None, "none")  # a one-part message


def test_ids_count_one_to_n_when_they_wrap():
    from simulators.sms_centre import SmsCentre

    centre = SmsCentre(parse_scenario({"sms_centre": {"message_id_wrap": 3}}))
    assert [centre.next_message_id() for _ in range(7)] == ["1", "2", "3", "1", "2", "3", "1"]
    unwrapped = SmsCentre(parse_scenario({}))
    ids = [unwrapped.next_message_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(int(i, 16) <= 0xFFFFFFFF for i in ids)
