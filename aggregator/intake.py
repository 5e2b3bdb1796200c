"""What a channel asks of the aggregator: a verification code, a query, a
query's state. Rules live here; the gRPC servicer only translates.

Order of checks on submit, cheapest and least revealing first: formats and
consent; a lock from a failed identity check; a running or recent query of
the phone (before the code is spent); the code; the operator; then the
insert that makes the query the phone's one running query.
"""
from __future__ import annotations

import datetime as dt
import logging
import secrets
import uuid
from collections.abc import Callable

import grpc
from opentelemetry import propagate

from aggregator import sms_text
from aggregator.catalogue import Enterprise
from aggregator.code_store import RESEND_AFTER, CodeStore
from aggregator.engine import SMS_STATES
from aggregator.links import Links
from aggregator.number_routing import NumberRouting
from aggregator.personal_data import PhoneProtector, code_hash
from aggregator.phone_locks import PhoneLocks
from aggregator.query_store import IN_PROGRESS, QueryStore
from aggregator.work_queue import WorkQueue
from yztc.errors import ServiceError
from yztc.identifiers import mask_phone, normalise_id_last6, normalise_phone, valid_code
from yztc.v1 import operator_connector_pb2 as op_pb2
from yztc.v1 import sms_notifier_pb2

log = logging.getLogger(__name__)

QUERY_COOLDOWN = dt.timedelta(hours=24)
ORPHAN_AFTER = dt.timedelta(seconds=30)
TERMS_VERSION = "2026-11"
Verdict = op_pb2.VerifySubscriberResponse.Verdict


def _phone_or_error(raw: str) -> str:
    phone = normalise_phone(raw)
    if phone is None:
        raise ServiceError("INVALID_ARGUMENT", detail="手机号码格式有误，请输入11位中国大陆手机号码。")
    return phone


def _trace_carrier() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def _seconds_until(moment: dt.datetime, now: dt.datetime) -> int:
    return max(1, int((moment - now).total_seconds() + 0.999))


class Intake:
    def __init__(
        self,
        *,
        codes: CodeStore,
        locks: PhoneLocks,
        queries: QueryStore,
        queue: WorkQueue,
        links: Links,
        routing: NumberRouting,
        protector: PhoneProtector,
        code_key: bytes,
        catalogue: list[Enterprise],
        on_accepted: Callable[[str], None],
        call_timeout: float,
        deliver_within: dt.timedelta,
        finalize_margin: dt.timedelta,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._codes = codes
        self._locks = locks
        self._queries = queries
        self._queue = queue
        self._links = links
        self._routing = routing
        self._protector = protector
        self._code_key = code_key
        self._catalogue = catalogue
        self._on_accepted = on_accepted
        self._timeout = call_timeout
        self._deliver_within = deliver_within
        self._finalize_margin = finalize_margin
        self._clock = clock

    async def _refuse_if_locked(self, phone_hash: str, now: dt.datetime) -> None:
        until = await self._locks.locked_until(phone_hash, now)
        if until is not None:
            raise ServiceError("VERIFICATION_FAILED", retry_after=_seconds_until(until, now))

    async def request_code(self, raw_phone: str) -> int:
        """Sends a fresh code; returns seconds before the next may be asked."""
        phone = _phone_or_error(raw_phone)
        phone_hash = self._protector.lookup_hash(phone)
        now = self._clock()
        await self._refuse_if_locked(phone_hash, now)
        code = f"{secrets.randbelow(1_000_000):06d}"
        next_allowed = await self._codes.issue(phone_hash, code_hash(self._code_key, phone_hash, code), now)
        if next_allowed is not None:
            raise ServiceError("RATE_LIMITED", retry_after=_seconds_until(next_allowed, now))
        await self._send_sms(f"code:{uuid.uuid4().hex}", phone, sms_text.verification_text(code))
        return int(RESEND_AFTER.total_seconds())

    async def submit(
        self, raw_phone: str, raw_id6: str, code: str, consent: bool, channel: str, requester: str
    ) -> dict:
        phone = _phone_or_error(raw_phone)
        id6 = normalise_id_last6(raw_id6)
        if id6 is None:
            raise ServiceError("INVALID_ARGUMENT", detail="身份证号码后六位格式有误。")
        if not valid_code(code):
            raise ServiceError("INVALID_ARGUMENT", detail="验证码应为6位数字。")
        if not consent:
            raise ServiceError("CONSENT_REQUIRED")
        phone_hash = self._protector.lookup_hash(phone)
        now = self._clock()

        await self._refuse_if_locked(phone_hash, now)
        latest = await self._queries.latest_for_phone(phone_hash)
        self._refuse_if_busy(latest, now)

        outcome, code_id = await self._codes.use(phone_hash, code_hash(self._code_key, phone_hash, code), now)
        if outcome == "invalid":
            raise ServiceError("CODE_INVALID")
        if outcome == "expired":
            raise ServiceError("CODE_EXPIRED")

        try:
            await self._verify_with_operator(phone, phone_hash, id6, now)
        except ServiceError as error:
            if error.code == "UNAVAILABLE" and code_id:
                await self._codes.give_back(code_id)
            raise

        query_id = uuid.uuid4().hex
        deliver_by = now + self._deliver_within
        seq = (latest["seq"] + 1) if latest else 1
        for _ in range(2):
            inserted = await self._queries.insert(
                query_id=query_id,
                seq=seq,
                phone_hash=phone_hash,
                phone_box=self._protector.encrypt(phone, query_id),
                phone_masked=mask_phone(phone),
                channel=channel,
                requester_id=requester,
                companies=[e.id for e in self._catalogue],
                now=now,
                deliver_by=deliver_by,
                finalize_at=deliver_by - self._finalize_margin,
                terms_version=TERMS_VERSION,
                trace_carrier=_trace_carrier(),
            )
            if inserted:
                break
            # Someone holds this number of the phone: a concurrent submission
            # (then it is the running query), or, if its query never came to
            # be (a crash between the two inserts), an orphan to step over.
            slot = await self._queries.slot(phone_hash, seq)
            other = await self._queries.get(slot["query_id"]) if slot else None
            if other is not None or slot is None or now - slot["at"] < ORPHAN_AFTER:
                raise ServiceError("QUERY_IN_PROGRESS", query_id=slot["query_id"] if slot else None)
            seq += 1
        else:
            raise ServiceError("UNAVAILABLE")
        await self._queue.add(query_id, now)
        log.info("query accepted", extra={"fields": {"query_id": query_id, "channel": channel}})
        self._on_accepted(query_id)
        return {"query_id": query_id, "status": IN_PROGRESS, "deliver_by": deliver_by}

    @staticmethod
    def _refuse_if_busy(latest: dict | None, now: dt.datetime) -> None:
        if latest is None:
            return
        if latest["status"] == IN_PROGRESS:
            raise ServiceError("QUERY_IN_PROGRESS", query_id=latest["_id"])
        done_at = latest.get("completed_at")
        if done_at is not None and now < done_at + QUERY_COOLDOWN:
            raise ServiceError("QUERY_LIMITED", retry_after=_seconds_until(done_at + QUERY_COOLDOWN, now))

    async def _verify_with_operator(self, phone: str, phone_hash: str, id6: str, now: dt.datetime) -> None:
        operator = self._routing.operator_for(phone)
        tried: set[str] = set()
        # At most one re-route: a ported number (携号转网) is answered for by its new operator.
        while operator is not None and operator in self._links.operators and operator not in tried:
            tried.add(operator)
            try:
                answer = await self._links.operators[operator].VerifySubscriber(
                    op_pb2.VerifySubscriberRequest(phone=phone, id_last6=id6),
                    timeout=self._timeout,
                )
            except grpc.aio.AioRpcError as error:
                log.warning("operator check failed", extra={"fields": {"operator": operator, "grpc": error.code().name}})
                raise ServiceError("UNAVAILABLE") from None
            if answer.verdict == Verdict.VERDICT_MATCH:
                return
            if answer.verdict == Verdict.VERDICT_CANCELLED:
                raise ServiceError("NUMBER_CANCELLED")
            if answer.verdict == Verdict.VERDICT_PORTED and len(tried) == 1:
                operator = answer.ported_to
                continue
            break
        until = await self._locks.lock(phone_hash, now)
        raise ServiceError("VERIFICATION_FAILED", retry_after=_seconds_until(until, now))

    async def get(self, query_id: str, channel: str, requester: str) -> dict:
        doc = await self._queries.get(query_id) if query_id else None
        if doc is None or doc["channel"] != channel or doc["requester_id"] != requester:
            raise ServiceError("NOT_FOUND")
        sms = doc["sms"]
        if sms["handed_over"] and sms["state"] in ("PENDING", "SENT"):
            # The notifier owns the message's state; read it, never write it
            # here (the query document has one writer: its lease holder).
            try:
                status = await self._links.notifier.GetStatus(
                    sms_notifier_pb2.GetStatusRequest(message_id=sms["message_id"]), timeout=1.0
                )
                sms["state"] = SMS_STATES.get(status.state, sms["state"])
            except grpc.aio.AioRpcError:
                pass  # show what we last knew
        return doc

    async def _send_sms(self, message_id: str, dest: str, text: str) -> None:
        try:
            await self._links.notifier.Send(
                sms_notifier_pb2.SendRequest(message_id=message_id, dest=dest, text=text),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as error:
            log.warning("notifier unavailable", extra={"fields": {"grpc": error.code().name}})
            raise ServiceError("UNAVAILABLE") from None
