"""What a channel asks of the aggregator: a verification code, a query, a
query's state. Rules live here; the gRPC servicer only translates."""
from __future__ import annotations

import datetime as dt
import logging
import secrets
import uuid
from collections.abc import Callable

import grpc

from aggregator import sms_text
from aggregator.catalogue import Enterprise
from aggregator.code_store import RESEND_AFTER, CodeStore
from aggregator.links import Links
from aggregator.number_routing import NumberRouting
from aggregator.personal_data import PhoneProtector, code_hash
from aggregator.query_store import QueryStore
from yztc.errors import ServiceError
from yztc.identifiers import mask_phone, normalise_id_last6, normalise_phone, valid_code
from yztc.v1 import operator_connector_pb2 as op_pb2
from yztc.v1 import sms_notifier_pb2

log = logging.getLogger(__name__)

QUERY_COOLDOWN = dt.timedelta(hours=24)
Verdict = op_pb2.VerifySubscriberResponse.Verdict


def _phone_or_error(raw: str) -> str:
    phone = normalise_phone(raw)
    if phone is None:
        raise ServiceError("INVALID_ARGUMENT", detail="手机号码格式有误，请输入11位中国大陆手机号码。")
    return phone


def _seconds_until(moment: dt.datetime, now: dt.datetime) -> int:
    return max(1, int((moment - now).total_seconds() + 0.999))


class Intake:
    def __init__(
        self,
        *,
        codes: CodeStore,
        queries: QueryStore,
        links: Links,
        routing: NumberRouting,
        protector: PhoneProtector,
        code_key: bytes,
        catalogue: list[Enterprise],
        start_fanout: Callable[[str], None],
        call_timeout: float,
        deliver_within: dt.timedelta,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._codes = codes
        self._queries = queries
        self._links = links
        self._routing = routing
        self._protector = protector
        self._code_key = code_key
        self._catalogue = catalogue
        self._start_fanout = start_fanout
        self._timeout = call_timeout
        self._deliver_within = deliver_within
        self._clock = clock

    async def request_code(self, raw_phone: str) -> int:
        """Sends a fresh code; returns seconds before the next may be asked."""
        phone = _phone_or_error(raw_phone)
        phone_hash = self._protector.lookup_hash(phone)
        now = self._clock()
        last = await self._codes.last_sent_at(phone_hash)
        if last is not None and now < last + RESEND_AFTER:
            raise ServiceError("RATE_LIMITED", retry_after=_seconds_until(last + RESEND_AFTER, now))
        code = f"{secrets.randbelow(1_000_000):06d}"
        await self._codes.put(phone_hash, code_hash(self._code_key, phone_hash, code), now)
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

        outcome = await self._codes.consume(phone_hash, code_hash(self._code_key, phone_hash, code), now)
        if outcome == "invalid":
            raise ServiceError("CODE_INVALID")
        if outcome == "expired":
            raise ServiceError("CODE_EXPIRED")

        last = await self._queries.last_completed_at(phone_hash)
        if last is not None and now < last + QUERY_COOLDOWN:
            raise ServiceError("QUERY_LIMITED", retry_after=_seconds_until(last + QUERY_COOLDOWN, now))

        await self._verify_with_operator(phone, id6)

        query_id = uuid.uuid4().hex
        running = await self._queries.claim_phone(phone_hash, query_id)
        if running is not None:
            raise ServiceError("QUERY_IN_PROGRESS", query_id=running)
        deliver_by = now + self._deliver_within
        await self._queries.insert(
            query_id=query_id,
            phone_hash=phone_hash,
            phone_box=self._protector.encrypt(phone, query_id),
            phone_masked=mask_phone(phone),
            channel=channel,
            requester_id=requester,
            companies=[e.id for e in self._catalogue],
            now=now,
            deliver_by=deliver_by,
        )
        log.info("query accepted", extra={"fields": {"query_id": query_id, "channel": channel}})
        self._start_fanout(query_id)
        return {"query_id": query_id, "status": "IN_PROGRESS", "deliver_by": deliver_by}

    async def _verify_with_operator(self, phone: str, id6: str) -> None:
        operator = self._routing.operator_for(phone)
        tried: set[str] = set()
        # At most one re-route: a ported number (携号转网) is answered for by its new operator.
        for _ in range(2):
            if operator is None or operator not in self._links.operators or operator in tried:
                break
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
            if answer.verdict == Verdict.VERDICT_PORTED:
                operator = answer.ported_to
                continue
            break
        raise ServiceError("VERIFICATION_FAILED", retry_after=int(QUERY_COOLDOWN.total_seconds()))

    async def get(self, query_id: str, channel: str, requester: str) -> dict:
        doc = await self._queries.get(query_id) if query_id else None
        if doc is None or doc["channel"] != channel or doc["requester_id"] != requester:
            raise ServiceError("NOT_FOUND")
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
