"""`python -m sms_notifier`: read settings, build, serve, stop gracefully on SIGTERM."""
from __future__ import annotations

import asyncio

from sms_notifier.message_store import MessageStore
from sms_notifier.service import SmsNotifierServicer
from sms_notifier.settings import NotifierSettings
from sms_notifier.smsc_link import SmscLink
from yztc.grpc_server import GrpcService, run_until_signalled
from yztc.logs import setup_logging
from yztc.mongo import connect
from yztc.telemetry import setup_telemetry, shutdown_telemetry
from yztc.v1 import sms_notifier_pb2, sms_notifier_pb2_grpc


async def main() -> None:
    settings = NotifierSettings()
    setup_logging("sms_notifier", settings.log_level)
    setup_telemetry("sms_notifier", settings)
    client = connect(settings.mongodb_uri, "yztc-sms-notifier")
    store = MessageStore(client.get_default_database("yztc"))
    link = SmscLink(settings.smsc_url, settings.source_addr, settings.smsc_timeout_seconds)
    servicer = SmsNotifierServicer(store, link)
    service = GrpcService(
        settings.listen,
        lambda server: sms_notifier_pb2_grpc.add_SmsNotifierServicer_to_server(servicer, server),
        [sms_notifier_pb2.DESCRIPTOR.services_by_name["SmsNotifier"].full_name],
    )

    async def start() -> None:
        await link.open()
        await service.start()
        print(f"sms_notifier listening on {settings.listen}", flush=True)

    async def stop() -> None:
        await service.stop()
        await link.close()
        await client.close()
        shutdown_telemetry()

    await run_until_signalled(start, stop)


if __name__ == "__main__":
    asyncio.run(main())
