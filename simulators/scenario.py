"""The simulators' scenario: who subscribes where, who has which accounts, and
how each outside party behaves; loaded from JSON and validated up front."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from yztc.identifiers import COMPANY_IDS, OPERATOR_IDS

DEFAULT_SCENARIO = Path(__file__).resolve().parent / "default_scenario.json"

_PHONE = re.compile(r"1[3-9]\d{9}")
_ID_LAST6 = re.compile(r"\d{5}[\dXx]")
_COMPANY_ID = re.compile(r"[a-z][a-z0-9_]{1,31}")
_ALIPAY_USER_ID = re.compile(r"2088\d{12}")


@dataclass(frozen=True)
class Subscriber:
    phone: str
    id_last6: str  # upper-cased, so comparisons only need to upper-case the other side
    operator: str
    status: Literal["active", "cancelled"]


@dataclass(frozen=True)
class Behaviour:
    """How an outside service misbehaves: delay, outright down, random failures."""

    latency_ms: int = 0
    fail_rate: float = 0.0
    down: bool = False


@dataclass(frozen=True)
class CompanyBehaviour(Behaviour):
    mode: Literal["sync", "async"] = "sync"


@dataclass(frozen=True)
class AlipaySection:
    # Demo auth codes that never get used up, so a person can log in by hand
    # again and again; tests mint single-use ones instead.
    auth_codes: dict[str, str] = field(default_factory=dict)
    tamper_signatures: bool = False
    # What a successful alipay.system.oauth.token names the user by: both
    # ids, or only one (an app on Alipay's openid scheme gets open_id only).
    ids: Literal["both", "user_id", "open_id"] = "both"


@dataclass(frozen=True)
class Throttle:
    """From the submit_sm after the `after`-th, answer ESME_RTHROTTLED for `for_ms`."""

    after: int
    for_ms: int


@dataclass(frozen=True)
class SmsCentreBehaviour(Behaviour):
    """The SMS centre: besides latency/fail_rate/down (over SMPP: fail_rate
    answers ESME_RSYSERR, down refuses binds), its own rate limit, spells of
    throttling, dropped connections and undeliverable numbers. Ordinals count
    the submit_sm PDUs received since the simulator started."""

    max_per_second: int = 0  # 0: no limit; above it ESME_RTHROTTLED
    throttle: tuple[Throttle, ...] = ()
    drop_at: tuple[int, ...] = ()  # close the connection on receiving these submit_sm (unanswered)
    undeliverable: tuple[str, ...] = ()  # accepted, then a receipt saying UNDELIV
    receipt_delay_ms: int = 0
    # The centre's receipt habits (CONTRACT, "Simulator scenario"): how a
    # receipt writes the id submit_sm_resp gave, whether SMPP receipts carry
    # the TLVs, which parts of a long message get one, whether it comes
    # before the submit answer, and whether the centre's ids wrap at N.
    receipt_id_format: Literal["same", "decimal", "hex_upper_padded", "upper"] = "same"
    receipt_tlvs: bool = True
    receipts: Literal["each_part", "first_part", "last_part", "none"] = "each_part"
    receipt_before_resp: bool = False
    message_id_wrap: int = 0


# phone -> company -> (total, ((app, count), ...))
AccountBook = dict[str, dict[str, tuple[int, tuple[tuple[str, int], ...]]]]


@dataclass(frozen=True)
class Scenario:
    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    accounts: AccountBook = field(default_factory=dict)
    companies: dict[str, CompanyBehaviour] = field(default_factory=dict)
    operators: dict[str, Behaviour] = field(default_factory=dict)
    alipay: AlipaySection = field(default_factory=AlipaySection)
    sms_centre: SmsCentreBehaviour = field(default_factory=SmsCentreBehaviour)
    # The 8 companies of the CONTRACT, and any further one the scenario names
    # in `companies` (a company that joins later is configuration).
    company_ids: tuple[str, ...] = COMPANY_IDS

    def accounts_for(self, phone: str, company: str) -> tuple[int, list[tuple[str, int]]]:
        """(total, [(app, count), ...]) of `phone` at `company`; (0, []) if none."""
        total, apps = self.accounts.get(phone, {}).get(company, (0, ()))
        return total, list(apps)

    def company(self, company: str) -> CompanyBehaviour:
        return self.companies.get(company, CompanyBehaviour())

    def operator(self, operator: str) -> Behaviour:
        return self.operators.get(operator, Behaviour())


def load_scenario(path: str | os.PathLike[str] | None = None) -> Scenario:
    """The scenario at `path`, else at env YZTC_SCENARIO, else the shipped default."""
    chosen = Path(path or os.environ.get("YZTC_SCENARIO") or DEFAULT_SCENARIO)
    text = chosen.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"scenario {chosen}: not JSON: {e}") from None
    try:
        return parse_scenario(data)
    except ValueError as e:
        raise ValueError(f"scenario {chosen}: {e}") from None


def parse_scenario(data: Any) -> Scenario:
    """A Scenario from decoded JSON; ValueError naming the bad field otherwise."""
    _object(data, "scenario")
    _known_keys(data, "scenario", {"subscribers", "accounts", "companies", "operators", "alipay", "sms_centre"})
    companies = data.get("companies", {})
    _object(companies, "companies")
    for key in companies:
        if not isinstance(key, str) or not _COMPANY_ID.fullmatch(key):
            raise ValueError(f"companies: {key!r} is not a company id (lower-case letters, digits, _)")
    company_ids = COMPANY_IDS + tuple(k for k in companies if k not in COMPANY_IDS)
    return Scenario(
        subscribers=_subscribers(data.get("subscribers", [])),
        accounts=_accounts(data.get("accounts", {}), company_ids),
        companies={company: _company_behaviour(value, f"companies.{company}") for company, value in companies.items()},
        company_ids=company_ids,
        operators={
            operator: _behaviour(value, f"operators.{operator}")
            for operator, value in _id_map(data.get("operators", {}), "operators", OPERATOR_IDS).items()
        },
        alipay=_alipay(data.get("alipay", {})),
        sms_centre=_sms_centre(data.get("sms_centre", {})),
    )


def _subscribers(rows: Any) -> dict[str, Subscriber]:
    if not isinstance(rows, list):
        raise ValueError("subscribers: must be a list")
    found: dict[str, Subscriber] = {}
    for i, row in enumerate(rows):
        where = f"subscribers[{i}]"
        _object(row, where)
        _known_keys(row, where, {"phone", "id_last6", "operator", "status"})
        phone = _phone(row.get("phone"), f"{where}.phone")
        id_last6 = row.get("id_last6")
        # The value is not echoed: even demo ID digits do not belong in error output.
        if not isinstance(id_last6, str) or not _ID_LAST6.fullmatch(id_last6):
            raise ValueError(f"{where}.id_last6: must be five digits then a digit or X")
        operator = _one_of(row.get("operator"), f"{where}.operator", OPERATOR_IDS)
        status = _one_of(row.get("status", "active"), f"{where}.status", ("active", "cancelled"))
        if phone in found:
            raise ValueError(f"{where}.phone: {phone} appears in more than one subscriber row")
        found[phone] = Subscriber(phone, id_last6.upper(), operator, status)
    return found


def _accounts(data: Any, company_ids: tuple[str, ...]) -> AccountBook:
    _object(data, "accounts")
    book: AccountBook = {}
    for phone, per_company in data.items():
        where = f"accounts.{phone}"
        _phone(phone, where)
        book[phone] = {}
        for company, value in _id_map(per_company, where, company_ids).items():
            at = f"{where}.{company}"
            if isinstance(value, dict):
                apps = tuple((app, _count(n, f"{at}.{app}")) for app, n in value.items())
                if any(not app for app, _ in apps):
                    raise ValueError(f"{at}: app names must not be empty")
                book[phone][company] = (sum(n for _, n in apps), apps)
            else:
                book[phone][company] = (_count(value, at), ())
    return book


def _behaviour_fields(data: Any, where: str, extra: set[str]) -> dict[str, Any]:
    _object(data, where)
    _known_keys(data, where, {"latency_ms", "fail_rate", "down"} | extra)
    latency = data.get("latency_ms", 0)
    if isinstance(latency, bool) or not isinstance(latency, int) or latency < 0:
        raise ValueError(f"{where}.latency_ms: must be a non-negative integer")
    fail_rate = data.get("fail_rate", 0.0)
    if isinstance(fail_rate, bool) or not isinstance(fail_rate, (int, float)) or not 0 <= fail_rate <= 1:
        raise ValueError(f"{where}.fail_rate: must be a number from 0 to 1")
    down = data.get("down", False)
    if not isinstance(down, bool):
        raise ValueError(f"{where}.down: must be true or false")
    return {"latency_ms": latency, "fail_rate": float(fail_rate), "down": down}


def _behaviour(data: Any, where: str) -> Behaviour:
    return Behaviour(**_behaviour_fields(data, where, set()))


def company_behaviour(data: Any, where: str) -> CompanyBehaviour:
    """A company's behaviour from JSON (the scenario's, or a runtime change)."""
    return _company_behaviour(data, where)


def _company_behaviour(data: Any, where: str) -> CompanyBehaviour:
    fields = _behaviour_fields(data, where, {"mode"})
    mode = _one_of(data.get("mode", "sync"), f"{where}.mode", ("sync", "async"))
    return CompanyBehaviour(**fields, mode=mode)


def _sms_centre(data: Any) -> SmsCentreBehaviour:
    where = "sms_centre"
    fields = _behaviour_fields(
        data,
        where,
        {
            "max_per_second",
            "throttle",
            "drop_at",
            "undeliverable",
            "receipt_delay_ms",
            "receipt_id_format",
            "receipt_tlvs",
            "receipts",
            "receipt_before_resp",
            "message_id_wrap",
        },
    )
    throttle = data.get("throttle", [])
    if not isinstance(throttle, list):
        raise ValueError(f"{where}.throttle: must be a list of {{after, for_ms}}")
    spells = []
    for i, spell in enumerate(throttle):
        at = f"{where}.throttle[{i}]"
        _object(spell, at)
        _known_keys(spell, at, {"after", "for_ms"})
        spells.append(Throttle(_count(spell.get("after"), f"{at}.after"), _count(spell.get("for_ms"), f"{at}.for_ms")))
    drop_at = data.get("drop_at", [])
    if not isinstance(drop_at, list):
        raise ValueError(f"{where}.drop_at: must be a list of submit_sm ordinals")
    undeliverable = data.get("undeliverable", [])
    if not isinstance(undeliverable, list):
        raise ValueError(f"{where}.undeliverable: must be a list of phones")
    return SmsCentreBehaviour(
        **fields,
        max_per_second=_count(data.get("max_per_second", 0), f"{where}.max_per_second"),
        throttle=tuple(spells),
        drop_at=tuple(_count(n, f"{where}.drop_at[{i}]") for i, n in enumerate(drop_at)),
        undeliverable=tuple(_phone(n, f"{where}.undeliverable[{i}]") for i, n in enumerate(undeliverable)),
        receipt_delay_ms=_count(data.get("receipt_delay_ms", 0), f"{where}.receipt_delay_ms"),
        receipt_id_format=_one_of(
            data.get("receipt_id_format", "same"),
            f"{where}.receipt_id_format",
            ("same", "decimal", "hex_upper_padded", "upper"),
        ),
        receipt_tlvs=_flag(data.get("receipt_tlvs", True), f"{where}.receipt_tlvs"),
        receipts=_one_of(
            data.get("receipts", "each_part"), f"{where}.receipts", ("each_part", "first_part", "last_part", "none")
        ),
        receipt_before_resp=_flag(data.get("receipt_before_resp", False), f"{where}.receipt_before_resp"),
        message_id_wrap=_id_wrap(data.get("message_id_wrap", 0), f"{where}.message_id_wrap"),
    )


# The centre's ids are 32-bit numbers (a receipt may write one as 10 decimal digits).
MAX_MESSAGE_ID = 0xFFFFFFFF


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: must be true or false")
    return value


def _id_wrap(value: Any, where: str) -> int:
    n = _count(value, where)
    if n > MAX_MESSAGE_ID:
        raise ValueError(f"{where}: must be 0 (ids never repeat) or from 1 to {MAX_MESSAGE_ID}")
    return n


def _alipay(data: Any) -> AlipaySection:
    _object(data, "alipay")
    _known_keys(data, "alipay", {"auth_codes", "tamper_signatures", "ids"})
    codes = data.get("auth_codes", {})
    _object(codes, "alipay.auth_codes")
    for code, user_id in codes.items():
        if not code:
            raise ValueError("alipay.auth_codes: an auth code must not be empty")
        if not isinstance(user_id, str) or not _ALIPAY_USER_ID.fullmatch(user_id):
            raise ValueError(f"alipay.auth_codes.{code}: user id must be 16 digits starting 2088")
    tamper = data.get("tamper_signatures", False)
    if not isinstance(tamper, bool):
        raise ValueError("alipay.tamper_signatures: must be true or false")
    ids = _one_of(data.get("ids", "both"), "alipay.ids", ("both", "user_id", "open_id"))
    return AlipaySection(auth_codes=dict(codes), tamper_signatures=tamper, ids=ids)


def _object(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: must be a JSON object")


def _known_keys(data: dict[str, Any], where: str, allowed: set[str]) -> None:
    # Keys starting with "_" are comments (as in config/*.json); anything else
    # unknown is most likely a typo that would silently change the scenario.
    unknown = sorted(k for k in data if k not in allowed and not k.startswith("_"))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(allowed))}")


def _id_map(data: Any, where: str, ids: tuple[str, ...]) -> dict[str, Any]:
    _object(data, where)
    for key in data:
        if key not in ids:
            raise ValueError(f"{where}: unknown id {key!r}; expected one of {' '.join(ids)}")
    return data


def _one_of(value: Any, where: str, allowed: tuple[str, ...]) -> Any:
    if value not in allowed:
        raise ValueError(f"{where}: {value!r} is not one of {' '.join(allowed)}")
    return value


def _phone(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _PHONE.fullmatch(value):
        raise ValueError(f"{where}: {value!r} is not an 11-digit mainland mobile number")
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: must be a non-negative integer")
    return value
