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
