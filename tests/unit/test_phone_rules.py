"""A phone's rules (aggregator/phone_rules.py) at their boundaries, on values
only: no database, the clock given."""

import datetime as dt

from aggregator.phone_rules import (
    CODE_TTL,
    LOCK,
    MAX_WRONG_ATTEMPTS,
    SENDS_PER_DAY,
    Code,
    Event,
    LastQuery,
    Phone,
    apply,
    cooldown_until,
    judge_code,
    last_query_state,
    locked_until,
    next_send_allowed,
    seconds_until,
    unmade_query_blocks,
)

NOW = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)
US = dt.timedelta(microseconds=1)
H = dt.timedelta(hours=1)


def _send(phone: Phone, at: dt.datetime, hmac: str = "right", code_id: str | None = None) -> Phone:
    return apply(phone, Event("code", at, code=Code(code_id or f"c{phone.v + 1}", hmac, at + CODE_TTL)))


def _with_code(at: dt.datetime = NOW) -> Phone:
    return _send(Phone("h"), at)


# -- sending codes --------------------------------------------------------------


def test_first_send_is_allowed():
    assert next_send_allowed(Phone("h"), NOW) is None


def test_a_second_send_within_60_seconds_is_refused_until_the_minute_is_up():
    phone = _with_code(NOW)
    assert next_send_allowed(phone, NOW + 59 * S) == NOW + 60 * S
    assert next_send_allowed(phone, NOW + 60 * S - US) == NOW + 60 * S
    assert next_send_allowed(phone, NOW + 60 * S) is None


def test_five_sends_a_day_and_the_sixth_waits_for_the_first_plus_24_hours():
    phone = Phone("h")
    for i in range(SENDS_PER_DAY):
        at = NOW + i * 60 * S
        assert next_send_allowed(phone, at) is None, i
        phone = _send(phone, at)
    assert SENDS_PER_DAY == 5
    assert next_send_allowed(phone, NOW + 5 * 60 * S) == NOW + 24 * H
    assert next_send_allowed(phone, NOW + 24 * H - US) == NOW + 24 * H
    assert next_send_allowed(phone, NOW + 24 * H) is None

    # The sixth goes out at +24 h; the seventh waits for the second's +24 h.
    phone = _send(phone, NOW + 24 * H)
    assert len(phone.sends) == SENDS_PER_DAY  # only what can still limit is kept
    assert next_send_allowed(phone, NOW + 24 * H + 59 * S) == NOW + 24 * H + 60 * S
    assert next_send_allowed(phone, NOW + 24 * H + 60 * S) is None


def test_a_new_code_replaces_the_old_one_with_no_failures():
    phone = apply(_with_code(), Event("wrong", NOW))
    phone = _send(phone, NOW + 60 * S, hmac="other", code_id="new")
    assert phone.code == Code("new", "other", NOW + 60 * S + CODE_TTL)
    assert phone.v == 3 and phone.sends == (NOW, NOW + 60 * S)


# -- attempts ---------------------------------------------------------------------


def test_a_code_is_valid_for_exactly_five_minutes():
    phone = _with_code(NOW)
    assert CODE_TTL == 5 * 60 * S
    assert judge_code(phone, "right", NOW + 5 * 60 * S - US) == "right"
    assert judge_code(phone, "right", NOW + 5 * 60 * S) == "expired"
    assert judge_code(phone, "wrong", NOW + 5 * 60 * S) == "wrong"  # an expired code is still guessed at


def test_no_code_is_dead():
    assert judge_code(Phone("h"), "right", NOW) == "dead"


def test_five_wrong_attempts_kill_the_code_even_for_the_right_code():
    phone = _with_code()
    for i in range(MAX_WRONG_ATTEMPTS - 1):
        phone = apply(phone, Event("wrong", NOW))
        assert judge_code(phone, "right", NOW) == "right", i
    phone = apply(phone, Event("wrong", NOW))
    assert MAX_WRONG_ATTEMPTS == 5 and phone.code.failures == 5 and phone.code.dead
    assert judge_code(phone, "right", NOW) == "dead"
    assert judge_code(phone, "wrong", NOW) == "dead"


def test_a_wrong_attempt_without_a_code_changes_only_the_version():
    phone = apply(Phone("h"), Event("wrong", NOW))
    assert phone == Phone("h", v=1)


def test_the_code_a_query_was_accepted_with_is_used():
    phone = apply(_with_code(), Event("accept", NOW + 10 * S, query_id="q1"))
    assert phone.code.used_by == "q1"
    assert phone.last == LastQuery("q1", NOW + 10 * S)
    assert judge_code(phone, "right", NOW + 10 * S) == "used"
    # A repeat of that submission after the code expired is still told apart.
    assert judge_code(phone, "right", NOW + CODE_TTL) == "used"
    assert judge_code(phone, "wrong", NOW + 10 * S) == "wrong"


# -- locks and the last query -------------------------------------------------


_OLD_QUERY = LastQuery("q0", NOW - 48 * H)


def _accepted(previous: LastQuery | None = _OLD_QUERY) -> Phone:
    phone = Phone("h", v=7, last=previous)
    phone = _send(phone, NOW)
    return apply(phone, Event("accept", NOW + S, query_id="q1"))


def test_a_lock_lasts_24_hours_and_gives_back_the_last_query():
    phone = _accepted()
    assert phone.before_last == LastQuery("q0", NOW - 48 * H)
    locked = apply(phone, Event("lock", NOW + 2 * S, query_id="q1", until=NOW + 2 * S + LOCK))
    assert LOCK == 24 * H
    assert locked.v == phone.v + 1
    assert locked.last == LastQuery("q0", NOW - 48 * H)  # q1 was never made
    # The code is not left spent: the lock, not the code, answers the next
    # try (the person who corrects the ID six is told of the lock).
    assert locked.code.used_by is None
    assert judge_code(locked, "right", NOW + 3 * S) == "right"
    assert locked_until(locked, NOW + 2 * S + LOCK - US) == NOW + 2 * S + LOCK
    assert locked_until(locked, NOW + 2 * S + LOCK) is None
    assert locked_until(phone, NOW) is None


def test_void_restores_the_last_query_and_keeps_the_code_spent():
    phone = _accepted()
    voided = apply(phone, Event("void", NOW + 2 * S, query_id="q1"))
    assert voided.last == LastQuery("q0", NOW - 48 * H)
    assert voided.code.used_by == "q1"
    assert voided.lock_until is None
    assert judge_code(voided, "right", NOW + 3 * S) == "used"


def test_give_back_restores_the_last_query_and_the_code():
    phone = _accepted(previous=None)
    given = apply(phone, Event("give_back", NOW + 2 * S, query_id="q1"))
    assert given.last is None
    assert given.code.used_by is None
    assert given.lock_until is None
    assert judge_code(given, "right", NOW + 3 * S) == "right"
    assert given.v == phone.v + 1


def test_undoing_another_query_than_the_last_changes_neither_last_nor_code():
    phone = _accepted()
    for kind in ("void", "give_back"):
        after = apply(phone, Event(kind, NOW + 2 * S, query_id="other"))
        assert after.last == phone.last, kind
        assert after.code == phone.code, kind
        assert after.v == phone.v + 1


def test_give_back_leaves_a_newer_code_alone():
    phone = _send(_accepted(), NOW + 60 * S, code_id="newer")
    given = apply(phone, Event("give_back", NOW + 61 * S, query_id="q1"))
    assert given.code == phone.code and given.code.used_by is None


def test_last_query_matters_for_72_hours():
    assert last_query_state(Phone("h"), NOW) == "none"
    phone = Phone("h", last=LastQuery("q", NOW))
    assert last_query_state(phone, NOW) == "look_up"
    assert last_query_state(phone, NOW + 72 * H) == "look_up"
    assert last_query_state(phone, NOW + 72 * H + US) == "none"


def test_an_unmade_query_blocks_for_30_seconds():
    last = LastQuery("q", NOW)
    assert unmade_query_blocks(last, NOW + 30 * S - US)
    assert not unmade_query_blocks(last, NOW + 30 * S)


def test_a_completed_query_limits_the_phone_for_24_hours():
    assert cooldown_until(None, NOW) is None
    assert cooldown_until(NOW, NOW + 24 * H - US) == NOW + 24 * H
    assert cooldown_until(NOW, NOW + 24 * H) is None


def test_seconds_until_rounds_up_to_at_least_one():
    assert seconds_until(NOW + 59 * S, NOW) == 59
    assert seconds_until(NOW + 59.5 * S, NOW) == 60
    assert seconds_until(NOW + 0.2 * S, NOW) == 1
    assert seconds_until(NOW - S, NOW) == 1
