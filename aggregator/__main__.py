"""`python -m aggregator`: read settings, build, serve, stop gracefully on SIGTERM."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging

from aggregator.catalogue import load_catalogue
from aggregator.code_store import CodeStore
from aggregator.fanout import Fanout
from aggregator.intake import Intake
from aggregator.links import Links
from aggregator.number_routing import NumberRouting
from aggregator.personal_data import PhoneProtector
from aggregator.query_store import QueryStore
from aggregator.service import AccountQueryServicer
from aggregator.settings import AggregatorSettings
from yztc.grpc_server import GrpcService, run_until_signalled
from yztc.logs import setup_logging
from yztc.mongo import connect
from yztc.settings import GrpcTlsSettings
from yztc.telemetry import setup_telemetry, shutdown_telemetry
from yztc.tls import server_credentials
from yztc.v1 import account_query_pb2, account_query_pb2_grpc

log = logging.getLogger("aggregator")


async def main() -> None:
    settings = AggregatorSettings()
    tls = GrpcTlsSettings()
    setup_logging("aggregator", settings.log_level)
    setup_telemetry("aggregator", settings)
    log.info("settings", extra={"fields": {"settings": settings.describe()}})

    catalogue = load_catalogue(settings.enterprises_file)
    missing = {e.id for e in catalogue} - settings.companies.keys()
    if missing:
        raise SystemExit(f"no connector target for companies: {sorted(missing)}")

    client = connect(settings.mongodb_uri, "yztc-aggregator")
    db = client.get_default_database("yztc")
    codes, queries = CodeStore(db), QueryStore(db)
    await codes.ensure_indexes()
    await queries.ensure_indexes()

    links = Links(settings.companies, settings.operators, settings.notifier_target)
    protector = PhoneProtector(settings.decoded_phone_keys(), settings.phone_key_id, settings.decoded_hash_key())
    fanout = Fanout(
        queries=queries,
        links=links,
        protector=protector,
        catalogue=catalogue,
        call_timeout=settings.call_timeout_seconds,
        max_attempts=settings.max_attempts,
        poll_interval=settings.poll_interval_seconds,
    )
    intake = Intake(
        codes=codes,
        queries=queries,
        links=links,
        routing=NumberRouting.from_file(settings.number_segments_file),
        protector=protector,
        code_key=settings.decoded_hash_key(),
        catalogue=catalogue,
        start_fanout=fanout.start,
        call_timeout=settings.call_timeout_seconds,
        deliver_within=dt.timedelta(hours=settings.deliver_within_hours),
    )
    credentials = server_credentials(tls)
    servicer = AccountQueryServicer(intake, catalogue, set(settings.channels), mtls=credentials is not None)
    service = GrpcService(
        settings.listen,
        lambda server: account_query_pb2_grpc.add_AccountQueryServiceServicer_to_server(servicer, server),
        [account_query_pb2.DESCRIPTOR.services_by_name["AccountQueryService"].full_name],
        credentials=credentials,
    )

    async def start() -> None:
        await service.start()
        await fanout.resume_all()
        print(f"aggregator listening on {settings.listen} ({'mutual TLS' if credentials else 'plaintext'})", flush=True)

    async def stop() -> None:
        await service.stop()
        await fanout.stop()
        await links.close()
        await client.close()
        shutdown_telemetry()

    await run_until_signalled(start, stop)


if __name__ == "__main__":
    asyncio.run(main())
