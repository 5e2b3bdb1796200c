"""`python -m aggregator`: read settings, build, serve, stop gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from aggregator.catalogue import load_catalogue
from aggregator.channel_quotas import ChannelConfig, ChannelQuotas
from aggregator.company_calls import CompanyCaller
from aggregator.engine import Engine
from aggregator.intake import Intake
from aggregator.links import Links
from aggregator.metrics import Metrics
from aggregator.number_routing import NumberRouting
from aggregator.personal_data import PhoneProtector
from aggregator.phone_store import PhoneStore
from aggregator.query_store import QueryStore, Recorder
from aggregator.retention import Retention
from aggregator.service import AccountQueryServicer
from aggregator.settings import AggregatorSettings
from aggregator.work_queue import WorkQueue
from yztc import event_loop
from yztc.grpc_server import GrpcService, run_until_signalled
from yztc.logs import setup_logging
from yztc.mongo import connect
from yztc.replicas import Replicas
from yztc.settings import GrpcTlsSettings
from yztc.telemetry import setup_telemetry, shutdown_telemetry
from yztc.tls import channel_credentials, server_credentials
from yztc.v1 import account_query_pb2, account_query_pb2_grpc

log = logging.getLogger("aggregator")


async def main() -> None:
    settings = AggregatorSettings()
    tls = GrpcTlsSettings()
    setup_logging("aggregator", settings.log_level)
    setup_telemetry("aggregator", settings)
    log.debug("settings", extra={"fields": {"settings": settings.describe()}})

    catalogue = load_catalogue(settings.enterprises_file)
    missing = {e.id for e in catalogue} - settings.companies.keys()
    if missing:
        raise SystemExit(f"no connector target for companies: {sorted(missing)}")

    client = connect(settings.mongodb_uri, "yztc-aggregator")
    db = client.get_default_database("yztc")
    # The heartbeat has its own connection pool: under load it must not wait
    # behind the queue of the application's operations, or the replica would
    # lose what it owns for being busy (yztc/replicas.py).
    heartbeat_client = connect(settings.mongodb_uri, "yztc-aggregator")
    replicas = Replicas(
        heartbeat_client.get_default_database("yztc"), "aggregator", dt.timedelta(seconds=settings.lease_seconds)
    )
    queue = WorkQueue(db, replicas)
    phones, queries = PhoneStore(db, replicas.owner), QueryStore(db)
    retention = Retention(db, dt.timedelta(days=settings.retention_days), phones)
    for store in (phones, queries, retention, queue):
        await store.ensure_indexes()

    metrics = Metrics()
    # Internal links: mutual TLS with the aggregator's own identity when
    # YZTC_AGGREGATOR_INTERNAL_TLS is on (connectors and notifier then serve
    # mutual TLS too); plaintext otherwise, the development switch.
    internal = channel_credentials(tls) if settings.internal_tls else None
    links = Links(settings.companies, settings.operators, settings.notifier_target, internal)
    callers = {e.id: CompanyCaller(e.id, links.companies[e.id], e.policy, metrics) for e in catalogue}
    for cid, caller in callers.items():
        metrics.watch_circuit(cid, caller.circuit_state)
    metrics.watch_certificates({"cert": tls.tls_cert, "ca": tls.tls_ca})
    protector = PhoneProtector(settings.decoded_phone_keys(), settings.phone_key_id, settings.decoded_hash_key())
    engine = Engine(
        queue=queue,
        replicas=replicas,
        queries=queries,
        recorder=Recorder(db),
        callers=callers,
        notifier=links.notifier,
        protector=protector,
        catalogue=catalogue,
        metrics=metrics,
        max_in_flight=settings.max_in_flight,
        poll_interval=settings.dispatch_poll_seconds,
        round_budget=settings.round_budget_seconds,
        flush_after=settings.flush_after_seconds,
        late_window=dt.timedelta(seconds=settings.late_answers_seconds),
        notifier_timeout=settings.call_timeout_seconds,
    )
    intake = Intake(
        phones=phones,
        queries=queries,
        queue=queue,
        engine=engine,
        links=links,
        routing=NumberRouting.from_file(settings.number_segments_file),
        protector=protector,
        code_key=settings.decoded_hash_key(),
        catalogue=catalogue,
        call_timeout=settings.call_timeout_seconds,
        deliver_within=dt.timedelta(seconds=settings.deliver_within_seconds),
        finalize_margin=dt.timedelta(seconds=settings.finalize_margin_seconds),
    )
    credentials = server_credentials(tls)
    quotas = ChannelQuotas(db, ChannelConfig.from_file(settings.channels_file))
    await quotas.ensure_indexes()
    servicer = AccountQueryServicer(
        intake, catalogue, ChannelConfig.from_file(settings.channels_file), quotas, mtls=credentials is not None
    )
    service = GrpcService(
        settings.listen,
        lambda server: account_query_pb2_grpc.add_AccountQueryServiceServicer_to_server(servicer, server),
        [account_query_pb2.DESCRIPTOR.services_by_name["AccountQueryService"].full_name],
        credentials=credentials,
    )

    async def purge_forever() -> None:
        while True:
            try:
                await retention.purge(dt.datetime.now(dt.UTC))
            except Exception as error:  # the database may be away; next pass
                log.warning("purge failed", extra={"fields": {"error": type(error).__name__}})
            await asyncio.sleep(settings.purge_interval_seconds)

    purger: list[asyncio.Task] = []

    async def start() -> None:
        await replicas.start()
        await service.start()
        service.watch(metrics.database_probe(lambda: client.admin.command("ping")))
        engine.start()
        purger.append(asyncio.create_task(purge_forever(), name="retention"))
        print(f"aggregator listening on {settings.listen} ({'mutual TLS' if credentials else 'plaintext'})", flush=True)

    async def stop() -> None:
        await service.stop()
        await intake.drain()
        for task in purger:
            task.cancel()
        await engine.stop()
        await replicas.stop()
        try:
            await replicas.leave()  # our open queries are the others' at once
        except Exception as error:
            log.warning("could not leave", extra={"fields": {"error": type(error).__name__}})
        await links.close()
        await client.close()
        await heartbeat_client.close()
        shutdown_telemetry()

    await run_until_signalled(start, stop)


if __name__ == "__main__":
    event_loop.run(main())
