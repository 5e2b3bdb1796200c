"""The simulators' scenario: loading, validation, and account look-ups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simulators.scenario import DEFAULT_SCENARIO, CompanyBehaviour, load_scenario, parse_scenario


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_default_scenario_has_the_documented_demo_phones() -> None:
    s = load_scenario(DEFAULT_SCENARIO)
    assert s.subscribers["13800138000"].id_last6 == "12345X"
    assert s.accounts_for("13800138000", "tencent") == (3, [("微信", 1), ("QQ", 2)])
    assert s.accounts_for("13800138000", "meituan") == (2, [])
    assert all(s.accounts_for("13900139000", c)[0] == 0 for c in ("tencent", "alipay", "jd"))
    assert s.subscribers["13700137000"].status == "cancelled"
    # 150 is a cmcc segment; the subscriber now belongs to ctcc.
    assert s.subscribers["15000150000"].operator == "ctcc"
    assert {s.subscribers[p].operator for p in ("18600186000", "13300133000", "19200192000")} == {"cucc", "ctcc", "cbn"}
    assert len(s.companies) == 8
    assert [c for c, b in s.companies.items() if b.mode == "async"] == ["jd"]
    assert s.alipay.auth_codes["demo-auth-code"] == "2088000000000001"


def test_path_argument_beats_env_which_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_env = _write(tmp_path, {"subscribers": []})
    monkeypatch.setenv("YZTC_SCENARIO", str(from_env))
    assert load_scenario().subscribers == {}
    assert "13800138000" in load_scenario(DEFAULT_SCENARIO).subscribers
    monkeypatch.delenv("YZTC_SCENARIO")
    assert "13800138000" in load_scenario().subscribers


def test_accounts_for_sums_apps_and_defaults_to_zero() -> None:
    s = parse_scenario({"accounts": {"18600186000": {"alibaba": {"淘宝": 2, "闲鱼": 1}, "jd": 4}}})
    assert s.accounts_for("18600186000", "alibaba") == (3, [("淘宝", 2), ("闲鱼", 1)])
    assert s.accounts_for("18600186000", "jd") == (4, [])
    assert s.accounts_for("18600186000", "baidu") == (0, [])
    assert s.accounts_for("13500135000", "jd") == (0, [])


def test_defaults_for_unnamed_companies_and_sections() -> None:
    s = parse_scenario({"companies": {"douyin": {"latency_ms": 40}}})
    assert s.company("douyin") == CompanyBehaviour(latency_ms=40, fail_rate=0.0, down=False, mode="sync")
    assert s.company("jd") == CompanyBehaviour()
    assert s.sms_centre.fail_rate == 0.0
    assert s.alipay.auth_codes == {} and s.alipay.tamper_signatures is False and s.alipay.ids == "both"
    assert parse_scenario({"alipay": {"ids": "open_id"}}).alipay.ids == "open_id"


def test_id_last6_is_kept_upper_case() -> None:
    s = parse_scenario({"subscribers": [{"phone": "13800138000", "id_last6": "12345x", "operator": "cmcc"}]})
    assert s.subscribers["13800138000"].id_last6 == "12345X"
    assert s.subscribers["13800138000"].status == "active"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "scenario: must be a JSON object"),
        ({"subscriber": []}, "unknown field(s) subscriber"),
        ({"subscribers": [{"phone": "1380013800", "id_last6": "123456", "operator": "cmcc"}]}, "subscribers[0].phone"),
        (
            {"subscribers": [{"phone": "13800138000", "id_last6": "12345Y", "operator": "cmcc"}]},
            "subscribers[0].id_last6",
        ),
        (
            {"subscribers": [{"phone": "13800138000", "id_last6": "123456", "operator": "chinamobile"}]},
            "subscribers[0].operator: 'chinamobile' is not one of cmcc cucc ctcc cbn",
        ),
        (
            {"subscribers": [{"phone": "13800138000", "id_last6": "123456", "operator": "cmcc", "status": "gone"}]},
            "subscribers[0].status",
        ),
        (
            {"subscribers": [{"phone": "13800138000", "id_last6": "123456", "operator": "cmcc"}] * 2},
            "subscribers[1].phone: 13800138000 appears in more than one",
        ),
        ({"accounts": {"23800138000": {"jd": 1}}}, "accounts.23800138000"),
        ({"accounts": {"13800138000": {"wechat": 1}}}, "accounts.13800138000: unknown id 'wechat'"),
        ({"accounts": {"13800138000": {"jd": -1}}}, "accounts.13800138000.jd: must be a non-negative integer"),
        ({"accounts": {"13800138000": {"tencent": {"QQ": "2"}}}}, "accounts.13800138000.tencent.QQ"),
        ({"companies": {"Tao Bao": {}}}, "companies: 'Tao Bao' is not a company id"),
        ({"accounts": {"13800138000": {"weibo": 1}}}, "accounts.13800138000: unknown id 'weibo'"),
        ({"companies": {"jd": {"mode": "batch"}}}, "companies.jd.mode"),
        ({"companies": {"jd": {"fail_rate": 1.5}}}, "companies.jd.fail_rate"),
        ({"companies": {"jd": {"latency": 10}}}, "companies.jd: unknown field(s) latency"),
        ({"companies": {"jd": {"down": "yes"}}}, "companies.jd.down"),
        ({"operators": {"cmcc": {"latency_ms": -5}}}, "operators.cmcc.latency_ms"),
        ({"alipay": {"auth_codes": {"c": "1234"}}}, "alipay.auth_codes.c"),
        ({"alipay": {"ids": "union_id"}}, "alipay.ids: 'union_id' is not one of both user_id open_id"),
        ({"sms_centre": {"fail_rate": "often"}}, "sms_centre.fail_rate"),
    ],
)
def test_bad_scenarios_are_refused_with_the_field_named(data: Any, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_scenario(data)
    assert message in str(excinfo.value)


def test_id_last6_is_not_echoed_in_errors() -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_scenario({"subscribers": [{"phone": "13800138000", "id_last6": "98765Q", "operator": "cmcc"}]})
    assert "98765Q" not in str(excinfo.value)


def test_load_names_the_file_on_errors(tmp_path: Path) -> None:
    bad_json = tmp_path / "broken.json"
    bad_json.write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.json: not JSON"):
        load_scenario(bad_json)
    with pytest.raises(ValueError, match=r"scenario\.json: companies: 'X' is not a company id"):
        load_scenario(_write(tmp_path, {"companies": {"X": {}}}))


def test_a_company_that_joins_later_is_scenario_data() -> None:
    scenario = parse_scenario({"companies": {"weibo": {"latency_ms": 5}}, "accounts": {"13800138000": {"weibo": 4}}})
    assert scenario.company_ids[-1] == "weibo" and "tencent" in scenario.company_ids
    assert scenario.accounts_for("13800138000", "weibo") == (4, [])


def test_comment_keys_are_allowed() -> None:
    assert parse_scenario({"_about": "demo", "subscribers": []}).subscribers == {}
