"""What a channel asks of the aggregator: a verification code, a query, a
query's state. The rules are phone_rules.py's; this module runs them against
the stores and the operator; the gRPC servicer only translates.

Submit, happy path: one read of the phone (R1), one claim of its next
version carrying the attempt (C1, with the channel's quota slot in the same
insert), the operator check, the open query inserted as this replica's own
work item (W1), the answer; the phone document is rewritten (W2) while the
round starts in process on the query in hand.

Every call names the channel's requester (request_rules.requester_id:
required, bounded); a code answers only to the channel and requester that
asked for it (phone_rules.judge_code), and a query is read only by them.

Order, least revealing first: the requester, formats and consent; the
code (nothing about the number's state, lock, running or recent query, is
told to a caller who has not presented its valid code: issue 12, "state
before proof"); then the lock and the last query (a running query's id only
to its own requester); then the operator. A wrong code is counted (its
claim won) before the answer says so; the claim also decides the race, so
of any number of concurrent guesses at most five are ever judged wrong
before the code is dead.

Once the attempt is claimed, the rest (operator, insert, phone write) runs
in its own task, shielded from the caller's deadline or cancellation, so
that a cancelled call never leaves a spent code without its query: the
caller who tries again gets QUERY_IN_PROGRESS with the query id.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable

import grpc

from aggregator import phone_rules, request_rules, sms_text
from aggregator.catalogue import Enterprise
from aggregator.channel_quotas import NO_QUOTA, Admission
from aggregator.engine import SMS_STATES, Engine
from aggregator.links import Links
from aggregator.number_routing import NumberRouting
from aggregator.personal_data import PhoneProtector, code_hash
from aggregator.phone_rules import Code, Event, Phone, seconds_until
from aggregator.phone_store import Committed, Lost, PhoneStore, SlotTaken
from aggregator.query_store import IN_PROGRESS, Part, Query, QueryStore, ResultSms
from aggregator.work_queue import WorkQueue
from yztc import telemetry
from yztc.errors import ServiceError
from yztc.identifiers import mask_phone, normalise_code, normalise_id_last6, normalise_phone
from yztc.v1 import operator_connector_pb2 as op_pb2
from yztc.v1 import sms_notifier_pb2

log = logging.getLogger(__name__)

TERMS_VERSION = "2026-11"
# Claims a request may lose in a row to other writers of the same phone
# before it gives up (each loss folds the winner's change: progress).
MAX_CLAIM_ROUNDS = 64
FINAL_SMS_STATES = frozenset({"DELIVERED", "FAILED"})
FINAL_SMS_CACHED = 100_000  # message ids (about 10 MB): a day of a busy replica's reads
Verdict = op_pb2.VerifySubscriberResponse.Verdict


def _phone_or_error(raw: str) -> str:
    phone = normalise_phone(raw)
    if phone is None:
        raise ServiceError("INVALID_ARGUMENT", detail="手机号码格式有误，请输入11位中国大陆手机号码。")
    return phone


class Intake:
    def __init__(
        self,
        *,
        phones: PhoneStore,
        queries: QueryStore,
        queue: WorkQueue,
        engine: Engine,
        links: Links,
        routing: NumberRouting,
        protector: PhoneProtector,
        catalogue: list[Enterprise],
        call_timeout: float,
        deliver_within: dt.timedelta,
        finalize_margin: dt.timedelta,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._phones = phones
        self._queries = queries
        self._queue = queue
        self._engine = engine
        self._links = links
        self._routing = routing
        self._protector = protector
        self._hasher = protector.hasher
        self._catalogue = catalogue
        self._timeout = call_timeout
        self._deliver_within = deliver_within
        self._finalize_margin = finalize_margin
        self._clock = clock
        self._background: set[asyncio.Task] = set()
        # Result SMS the notifier reported final (DELIVERED/FAILED), by
        # message id: a final state never changes, so a settled message costs
        # no more look-ups on this replica (issue 14 item 4). Bounded (LRU).
        self._final_sms: collections.OrderedDict[str, str] = collections.OrderedDict()

    # -- claims -----------------------------------------------------------------

    async def _commit(self, phone: Phone, event: Event, admission: Admission) -> Committed | Lost:
        """Claims `event` on `phone` with the admission's quota slots; the
        slots are taken once whatever happens to the claim after them."""
        while True:
            outcome = await self._phones.claim(phone, event, admission.slots())
            if not isinstance(outcome, SlotTaken):
                admission.taken()
                return outcome
            if not admission.retake(outcome.slot_id):
                raise ServiceError("RATE_LIMITED", retry_after=max(1, int(admission.retry_after + 0.999)))

    async def _append(self, phone: Phone, make: Callable[[Phone], Event | None]) -> Phone:
        """Commits `make(state)` on the phone's next free version, folding the
        changes of whoever came first; returns the state after it (or the
        state as it is, if `make` says there is nothing left to do)."""
        for _ in range(MAX_CLAIM_ROUNDS):
            event = make(phone)
            if event is None:
                return phone
            outcome = await self._commit(phone, event, NO_QUOTA)
            phone = outcome.phone
            if isinstance(outcome, Committed):
                return phone
        raise ServiceError("UNAVAILABLE")

    def _write_soon(self, phone: Phone) -> None:
        """The phone document at the committed version, off the answer's path
        (if it is lost, the claim holds the same facts: phone_store.py)."""
        self._in_background(self._phones.write(phone, self._clock()), "phone-write")

    def _in_background(self, work: Awaitable, name: str) -> asyncio.Task:
        async def run() -> None:
            try:
                await work
            except Exception as error:
                log.warning("background write failed", extra={"fields": {"what": name, "error": type(error).__name__}})

        task = asyncio.create_task(run(), name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- verification codes -------------------------------------------------------

    async def request_code(self, raw_phone: str, channel: str, requester: str, admission: Admission = NO_QUOTA) -> int:
        """Sends a fresh code, bound to the channel and requester asking for
        it (only they may present it: phone_rules.judge_code); returns
        seconds before the next may be asked. INVALID_ARGUMENT for a phone or
        requester_id not of the form (request_rules), RATE_LIMITED with
        `retry_after` while the phone's send limits hold. Whether the number
        is locked is not told here (state before proof). The admission's
        quota slot goes with the claim; a request that ends before it leaves
        the slot to the caller to `spend`."""
        requester = request_rules.requester_id(requester)
        phone_number = _phone_or_error(raw_phone)
        owner = request_rules.requester_tag(self._hasher, channel, requester)
        now = self._clock()
        phone = await self._phones.read(self._protector.lookup_hashes(phone_number))
        code = f"{secrets.randbelow(1_000_000):06d}"
        event = None
        for _ in range(MAX_CLAIM_ROUNDS):
            wait_until = phone_rules.next_send_allowed(phone, now)
            if wait_until is not None:
                raise ServiceError("RATE_LIMITED", retry_after=seconds_until(wait_until, now))
            event = Event(
                "code",
                now,
                code=Code(
                    uuid.uuid4().hex,
                    code_hash(self._hasher, phone.hash, code),
                    now + phone_rules.CODE_TTL,
                    owner=owner,
                ),
            )
            outcome = await self._commit(phone, event, admission)
            phone = outcome.phone
            if isinstance(outcome, Committed):
                break
        else:
            raise ServiceError("UNAVAILABLE")
        assert event is not None and event.code is not None
        # The document before the SMS: the person may type the code at once.
        try:
            await self._phones.write(phone, self._clock())
        except Exception as error:  # the claim holds it (phone_store.catch_up)
            log.warning("phone not written", extra={"fields": {"error": type(error).__name__}})
        await self._send_sms(f"code:{event.code.id}", phone_number, sms_text.verification_text(code), attempt=1)
        return int(phone_rules.RESEND_AFTER.total_seconds())

    # -- queries -----------------------------------------------------------------

    async def submit(
        self,
        raw_phone: str,
        raw_id6: str,
        raw_code: str,
        consent: bool,
        channel: str,
        requester: str,
        admission: Admission = NO_QUOTA,
    ) -> dict:
        """Accepts a query: {"query_id", "status", "deliver_by"}; or raises a
        ServiceError with the CONTRACT code. The code counts only if this
        channel's requester asked for it; anyone else is answered CODE_INVALID
        with nothing compared or counted (security review M6)."""
        requester = request_rules.requester_id(requester)
        phone_number = _phone_or_error(raw_phone)
        id6 = normalise_id_last6(raw_id6)
        if id6 is None:
            raise ServiceError("INVALID_ARGUMENT", detail="身份证号码后六位格式有误。")
        code = normalise_code(raw_code)
        if code is None:
            raise ServiceError("INVALID_ARGUMENT", detail="验证码应为6位数字。")
        if not consent:
            raise ServiceError("CONSENT_REQUIRED")
        now = self._clock()
        phone = await self._phones.read(self._protector.lookup_hashes(phone_number))
        raced = caught_up = False
        for _ in range(MAX_CLAIM_ROUNDS):
            # Under the keys the phone's current code was kept with (a key
            # rotation does not void the codes sent before it).
            stored = phone.code or Code("", "", now)
            presented = code_hash(self._hasher, phone.hash, code, stored.hmac)
            owner = request_rules.requester_tag(self._hasher, channel, requester, stored.owner)
            verdict = phone_rules.judge_code(phone, presented, now, owner)
            if raced and verdict == "right":
                verdict = "wrong"  # it raced another guess: counted as one
            if verdict in ("dead", "expired", "used") and not caught_up:
                # Refused without a claim of its own: first make sure no
                # newer change (a new code) is missing from the document.
                caught_up = True
                fresh = await self._phones.catch_up(phone)
                if fresh.v != phone.v:
                    phone = fresh
                    continue
            if verdict == "dead":
                raise ServiceError("CODE_INVALID")
            if verdict == "expired":
                raise ServiceError("CODE_EXPIRED")
            if verdict == "used":
                await self._refuse_repeat(phone, now)
            if verdict == "wrong":
                outcome = await self._commit(phone, Event("wrong", now), admission)
                phone = outcome.phone
                if isinstance(outcome, Committed):
                    self._write_soon(phone)
                    raise ServiceError("CODE_INVALID")
                raced = raced or outcome.rival.kind == "wrong"
                continue
            # The right code: now, and only now, the number's state.
            until = phone_rules.locked_until(phone, now)
            if until is not None:
                raise ServiceError("VERIFICATION_FAILED", retry_after=seconds_until(until, now))
            await self._refuse_if_busy(phone, now, channel, requester)
            query_id = uuid.uuid4().hex
            outcome = await self._commit(phone, Event("accept", now, query_id=query_id), admission)
            phone = outcome.phone
            if isinstance(outcome, Committed):
                break
            raced = raced or outcome.rival.kind == "wrong"
        else:
            raise ServiceError("UNAVAILABLE")
        # The code is spent under our claim: see the rest through whatever
        # happens to the caller.
        task = asyncio.create_task(
            self._make_query(phone, phone_number, id6, query_id, channel, requester, now),
            name=f"accept-{query_id}",
        )
        self._background.add(task)
        task.add_done_callback(self._made)
        return await asyncio.shield(task)

    def _made(self, task: asyncio.Task) -> None:
        """A submission's making ended; if its caller had gone, nobody else
        reads its outcome (a ServiceError, or the database away at shutdown)."""
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            if not isinstance(error, ServiceError):
                log.warning("query not made", extra={"fields": {"error": type(error).__name__}})

    async def _refuse_repeat(self, phone: Phone, now: dt.datetime) -> None:
        """The code presented is the one a query was accepted with: the
        caller proved the number, so it is told of that query (running, or
        limiting the number for 24 h); otherwise the code is simply used."""
        assert phone.code is not None and phone.code.used_by is not None
        query_id = phone.code.used_by
        query = await self._queries.get(query_id)
        if query is None:
            if (
                phone.last is not None
                and phone.last.query_id == query_id
                and phone_rules.unmade_query_blocks(phone.last, now)
            ):
                raise ServiceError("QUERY_IN_PROGRESS", query_id=query_id)
        elif query.status == IN_PROGRESS:
            raise ServiceError("QUERY_IN_PROGRESS", query_id=query_id)
        elif (until := phone_rules.cooldown_until(query.completed_at, now)) is not None:
            raise ServiceError("QUERY_LIMITED", retry_after=seconds_until(until, now))
        raise ServiceError("CODE_INVALID")

    async def _refuse_if_busy(self, phone: Phone, now: dt.datetime, channel: str, requester: str) -> None:
        """QUERY_IN_PROGRESS or QUERY_LIMITED from the phone's last query (a
        look-up only when it is recent enough to matter). The running query's
        id goes only to the channel and requester it was made for (security
        review M1): the holder of the phone's code from elsewhere is told that
        a query runs, not which."""
        if phone_rules.last_query_state(phone, now) == "none":
            return
        assert phone.last is not None
        query = await self._queries.get(phone.last.query_id)
        if query is None:
            if phone_rules.unmade_query_blocks(phone.last, now):
                raise ServiceError("QUERY_IN_PROGRESS")  # being made: whose is not known yet
            return  # its claimer died before making it
        if query.status == IN_PROGRESS:
            mine = self._may_see(query, channel, requester)
            raise ServiceError("QUERY_IN_PROGRESS", query_id=query.id if mine else None)
        until = phone_rules.cooldown_until(query.completed_at, now)
        if until is not None:
            raise ServiceError("QUERY_LIMITED", retry_after=seconds_until(until, now))

    async def _make_query(
        self,
        phone: Phone,
        phone_number: str,
        id6: str,
        query_id: str,
        channel: str,
        requester: str,
        now: dt.datetime,
    ) -> dict:
        try:
            await self._verify_with_operator(phone_number, id6)
        except _OperatorSaid as said:
            if said.verdict == "mismatch":
                until = now + phone_rules.LOCK
                phone = await self._append(phone, lambda p: Event("lock", now, query_id=query_id, until=until))
                self._write_soon(phone)
                raise ServiceError("VERIFICATION_FAILED", retry_after=seconds_until(until, now)) from None
            kind = "void" if said.verdict == "cancelled" else "give_back"
            phone = await self._append(phone, lambda p: Event(kind, now, query_id=query_id))
            self._write_soon(phone)
            raise ServiceError("NUMBER_CANCELLED" if kind == "void" else "UNAVAILABLE") from None
        deliver_by = now + self._deliver_within
        query = Query(
            id=query_id,
            phone_hash=phone.hash,
            phone_box=self._protector.encrypt(phone_number, query_id),
            phone_masked=mask_phone(phone_number),
            channel=channel,
            requester_tag=request_rules.requester_tag(self._hasher, channel, requester),
            consent={"at": now, "terms_version": TERMS_VERSION},
            # W3C trace context of the accepting request: every round of
            # the query continues that one trace.
            trace=telemetry.trace_carrier(),
            created_at=now,
            deliver_by=deliver_by,
            finalize_at=deliver_by - self._finalize_margin,
            companies={e.id: Part() for e in self._catalogue},  # due now
            sms=ResultSms(message_id=f"result:{query_id}"),
        )
        try:
            await self._queue.add_owned(query.to_doc(), self._clock())
            self._engine.adopt(query)
        except Exception:
            log.warning("query not stored", extra={"fields": {"query_id": query_id}})
            phone = await self._append(phone, lambda p: Event("give_back", now, query_id=query_id))
            self._write_soon(phone)
            raise ServiceError("UNAVAILABLE") from None
        # The document is not rewritten after an accept: the accept claim is
        # its record until the phone's next change rewrites the document, and
        # a reader holding the document before it folds the claim in (one
        # more read; phone_store.py). This replica answers from memory.
        log.info("query accepted", extra={"fields": {"query_id": query_id, "channel": channel}})
        return {"query_id": query_id, "status": IN_PROGRESS, "deliver_by": deliver_by}

    async def _verify_with_operator(self, phone: str, id6: str) -> None:
        """Returns on a match; raises _OperatorSaid otherwise."""
        operator = self._routing.operator_for(phone)
        tried: set[str] = set()
        # At most one re-route: a ported number (携号转网) is answered for by its new operator.
        while operator is not None and operator in self._links.operators and operator not in tried:
            tried.add(operator)
            try:
                answer = await self._links.operators[operator].VerifySubscriber(
                    op_pb2.VerifySubscriberRequest(phone=phone, id_last6=id6),
                    timeout=self._timeout,
                    metadata=telemetry.outgoing_metadata(),
                )
            except grpc.aio.AioRpcError as error:
                log.warning(
                    "operator check failed", extra={"fields": {"operator": operator, "grpc": error.code().name}}
                )
                raise _OperatorSaid("unavailable") from None
            if answer.verdict == Verdict.VERDICT_MATCH:
                return
            if answer.verdict == Verdict.VERDICT_CANCELLED:
                raise _OperatorSaid("cancelled")
            if answer.verdict == Verdict.VERDICT_PORTED and len(tried) == 1:
                operator = answer.ported_to
                continue
            break
        raise _OperatorSaid("mismatch")

    async def get(self, query_id: str, channel: str, requester: str) -> Query:
        """The query, if this channel's requester made it. INVALID_ARGUMENT
        for a requester_id not of the form (request_rules); NOT_FOUND for an
        id of no query's form (not looked up), an unknown query, another
        channel's or requester's, and a purged one (retention.py: its
        personal fields, the requester among them, are gone; security review
        L4)."""
        requester = request_rules.requester_id(requester)
        if not request_rules.names_a_query(query_id):
            raise ServiceError("NOT_FOUND")
        query = await self._queries.get(query_id)
        if query is None or query.purged or not self._may_see(query, channel, requester):
            raise ServiceError("NOT_FOUND")
        sms = query.sms
        if sms.handed_over and sms.state in ("PENDING", "SENT"):
            # The notifier owns the message's state; read it, never write it
            # here (the query document has one writer: its lease holder).
            final = self._final_sms.get(sms.message_id)
            if final is not None:
                self._final_sms.move_to_end(sms.message_id)
                sms.state = final
                return query
            try:
                status = await self._links.notifier.GetStatus(
                    sms_notifier_pb2.GetStatusRequest(message_id=sms.message_id), timeout=1.0
                )
                sms.state = SMS_STATES.get(status.state, sms.state)
            except grpc.aio.AioRpcError:
                pass  # show what we last knew
            if sms.state in FINAL_SMS_STATES:
                self._final_sms[sms.message_id] = sms.state
                if len(self._final_sms) > FINAL_SMS_CACHED:
                    self._final_sms.popitem(last=False)
        return query

    def _may_see(self, query: Query, channel: str, requester: str) -> bool:
        """Whether the caller is the query's requester (its tag made under
        the key of the query's; a record made before keyed tags is judged by
        the tag of the id it holds, Query.current_requester_tag)."""
        stored = query.current_requester_tag(self._hasher)
        caller = request_rules.requester_tag(self._hasher, channel, requester, stored)
        return request_rules.may_see(query.channel, stored, channel, caller)

    async def _send_sms(self, message_id: str, dest: str, text: str, attempt: int) -> None:
        try:
            await self._links.notifier.Send(
                sms_notifier_pb2.SendRequest(message_id=message_id, dest=dest, text=text, attempt=attempt),
                timeout=self._timeout,
                metadata=telemetry.outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as error:
            log.warning("notifier unavailable", extra={"fields": {"grpc": error.code().name}})
            raise ServiceError("UNAVAILABLE") from None

    async def drain(self) -> None:
        """At shutdown: let accepted queries finish being made."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=5.0)


class _OperatorSaid(Exception):
    def __init__(self, verdict: str) -> None:
        super().__init__(verdict)
        self.verdict = verdict
