"""`python -m sms_notifier`: read settings, build, serve, stop gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sys

from pydantic import ValidationError

from sms_notifier.cmpp_link import CmppSettings
from sms_notifier.message_store import MessageStore
from sms_notifier.metrics import Metrics
from sms_notifier.sealed_fields import Sealer
from sms_notifier.send_queue import SendQueue
from sms_notifier.send_rate import SendPacer
from sms_notifier.sender import Sender
from sms_notifier.service import SmsNotifierServicer
from sms_notifier.settings import NotifierSettings
from sms_notifier.smsc_links import link_from_settings
from yztc import event_loop
from yztc.certificate_expiry import watch_certificates
from yztc.grpc_server import GrpcService, run_until_signalled
from yztc.logs import setup_logging
from yztc.mongo import connect
from yztc.revoked_certificates import RevokedCertificates
from yztc.settings import GrpcTlsSettings, refuse_outside_development
from yztc.telemetry import setup_telemetry, shutdown_telemetry
from yztc.tls import require_tls, server_credentials
from yztc.v1 import sms_notifier_pb2, sms_notifier_pb2_grpc

log = logging.getLogger("sms_notifier")


async def main(settings: NotifierSettings, cmpp_settings: CmppSettings | None = None) -> None:
    setup_logging("sms_notifier", settings.log_level)
    setup_telemetry("sms_notifier", settings)
    log.debug("settings", extra={"fields": {"settings": settings.describe()}})
    # Fail closed (M3): no certificates, no start (unless YZTC_DEVELOPMENT=1).
    tls = GrpcTlsSettings()
    require_tls(tls, "sms_notifier", addresses=(settings.listen,))
    refuse_outside_development("sms_notifier", settings.development, settings.production_refusals)
    watch_certificates("sms_notifier", tls, smsc_cert=settings.smsc_tls_cert_file, smsc_ca=settings.smsc_tls_ca_file)
    client = connect(settings.mongodb_uri, "yztc-sms-notifier")
    db = client.get_default_database("yztc")
    store = MessageStore(
        db,
        kept_receipts_per_hour=settings.kept_receipts_per_hour,
        kept_receipt_seconds=settings.kept_receipt_seconds,
    )
    queue = SendQueue(db, dt.timedelta(seconds=settings.lease_seconds))
    sealer = Sealer(settings.data_keys(), settings.data_key_id)
    metrics = Metrics()
    link = link_from_settings(settings, cmpp_settings, metrics)
    sender = Sender(
        store,
        queue,
        link,
        sealer,
        SendPacer(settings.max_per_second, pause=settings.throttle_pause_seconds),
        metrics,
        window=cmpp_settings.window if cmpp_settings is not None else settings.window,
        poll_seconds=settings.poll_seconds,
        push_seconds=settings.push_seconds,
        record_wait=settings.record_wait_seconds,
        retry_min=settings.retry_min_seconds,
        retry_max=settings.retry_max_seconds,
        give_up_after=dt.timedelta(seconds=settings.give_up_after_seconds),
        throttle_pause=settings.throttle_pause_seconds,
        retention=dt.timedelta(days=settings.retention_days),
        finals_batch_seconds=settings.finals_batch_seconds,
        receipt_window_seconds=settings.receipt_window_seconds,
        receipt_date_slack_seconds=settings.receipt_date_slack_seconds,
    )
    link.on_bound = sender.wake
    link.on_receipt = sender.settler.on_receipt
    revoked = RevokedCertificates.from_setting(tls.tls_revoked_serials_file)
    servicer = SmsNotifierServicer(sender, settings.max_parts, settings.allowed_callers, revoked)
    service = GrpcService(
        settings.listen,
        lambda server: sms_notifier_pb2_grpc.add_SmsNotifierServicer_to_server(servicer, server),
        [sms_notifier_pb2.DESCRIPTOR.services_by_name["SmsNotifier"].full_name],
        # Mutual TLS from the internal CA, answering only the aggregator
        # (spiffe://yztc/service/aggregator); checked at start (require_tls).
        credentials=server_credentials(tls),
    )

    async def start() -> None:
        await store.ensure_indexes()
        await queue.ensure_indexes()
        await link.start()
        # Serve once bound (or after T_max without): a Send in the first
        # instant would otherwise find no session and go to the queue.
        try:
            await asyncio.wait_for(link.bound.wait(), timeout=settings.push_seconds)
        except TimeoutError:
            pass
        await sender.start()
        await service.start()
        service.watch(metrics.database_probe(lambda: client.admin.command("ping")))
        print(f"sms_notifier listening on {settings.listen}", flush=True)

    async def stop() -> None:
        await service.stop()
        await sender.stop()
        await link.close()  # hands over the receipts it acknowledged
        await sender.settler.close()  # held receipts aside, final records written
        await client.close()
        shutdown_telemetry()

    await run_until_signalled(start, stop)


def run() -> int:
    try:
        settings = NotifierSettings()
        cmpp_settings = CmppSettings() if settings.smsc_protocol == "cmpp30" else None
    except ValidationError as e:
        prefix = "YZTC_NOTIFIER_CMPP_" if e.title == CmppSettings.__name__ else "YZTC_NOTIFIER_"
        for error in e.errors():
            where = "_".join(str(part) for part in error["loc"]).upper()
            env = f"{prefix}{where}" if where else f"{prefix}*"
            print(f"sms_notifier: {env}: {error['msg']}", file=sys.stderr)
        return 2
    event_loop.run(main(settings, cmpp_settings))
    return 0


if __name__ == "__main__":
    sys.exit(run())
