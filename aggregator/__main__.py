"""`python -m aggregator`: read settings, build, serve, stop gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from aggregator.catalogue import load_catalogue
from aggregator.channel_quotas import ChannelQuotas, ChannelsFile
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
from aggregator.service import AccountQueryServicer, ChannelAdmission
from aggregator.settings import AggregatorSettings
from aggregator.work_queue import WorkQueue
from yztc import event_loop
from yztc.certificate_expiry import watch_certificates
from yztc.grpc_server import GrpcService, run_until_signalled
from yztc.logs import setup_logging
from yztc.mongo import connect
from yztc.replicas import Replicas
from yztc.settings import GrpcTlsSettings
from yztc.telemetry import setup_telemetry, shutdown_telemetry
from yztc.tls import channel_credentials, require_tls, server_credentials
from yztc.v1 import account_query_pb2, account_query_pb2_grpc

log = logging.getLogger("aggregator")


async def main() -> None:
    settings = AggregatorSettings()
    tls = GrpcTlsSettings()
    setup_logging("aggregator", settings.log_level)
    setup_telemetry("aggregator", settings)
    log.debug("settings", extra={"fields": {"settings": settings.describe()}})
    # Fail closed (M3): both ports and the internal links need certificates,
    # unless YZTC_DEVELOPMENT=1 (then plaintext on loopback, with a warning).
    require_tls(
        tls,
        "aggregator",
        addresses=(
            settings.listen,
            settings.internal_listen,
            settings.notifier_target,
            *settings.companies.values(),
            *settings.operators.values(),
        ),
        extra={"YZTC_AGGREGATOR_CHANNELS_CA": settings.channels_ca},
    )
    channels = ChannelsFile(settings.channels_file, settings.development)

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
    # Internal links: mutual TLS with the aggregator's internal identity
    # (spiffe://yztc/service/aggregator, the one caller connectors and the
    # notifier admit); plaintext only under the development switch.
    links = Links(settings.companies, settings.operators, settings.notifier_target, channel_credentials(tls))
    callers = {e.id: CompanyCaller(e.id, links.companies[e.id], e.policy, metrics) for e in catalogue}
    for cid, caller in callers.items():
        metrics.watch_circuit(cid, caller.circuit_state)
    watch_certificates("aggregator", tls, channels_ca=settings.channels_ca)
    hasher = settings.hasher()
    protector = PhoneProtector(settings.decoded_phone_keys(), settings.phone_key_id, hasher)
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
        catalogue=catalogue,
        call_timeout=settings.call_timeout_seconds,
        deliver_within=dt.timedelta(seconds=settings.deliver_within_seconds),
        finalize_margin=dt.timedelta(seconds=settings.finalize_margin_seconds),
    )
    quotas = ChannelQuotas(db, channels, hasher)
    await quotas.ensure_indexes()
    # Two ports, one servicer each: the public channel port trusts only the
    # channels' CA and admits channels; the internal port trusts only the
    # internal CA and admits the gateway (as its channel, same quotas).
    # Health and reflection on the public port answer admitted channels only.
    names = [account_query_pb2.DESCRIPTOR.services_by_name["AccountQueryService"].full_name]
    public_admission = ChannelAdmission(channels, internal=False)
    public = AccountQueryServicer(intake, catalogue, public_admission, quotas)
    internal = AccountQueryServicer(intake, catalogue, ChannelAdmission(channels, internal=True), quotas)
    credentials = server_credentials(tls, client_ca=settings.channels_ca)
    service = GrpcService(
        settings.listen,
        lambda server: account_query_pb2_grpc.add_AccountQueryServiceServicer_to_server(public, server),
        names,
        credentials=credentials,
        gate=public_admission.gate,
    )
    internal_service = GrpcService(
        settings.internal_listen,
        lambda server: account_query_pb2_grpc.add_AccountQueryServiceServicer_to_server(internal, server),
        names,
        credentials=server_credentials(tls),
    )

    async def purge_forever() -> None:
        # Records from before keyed tags (an upgrade's roll-out, when older
        # replicas may still write them): looked for until a pass finds
        # none after this replica's first hour, then no more scans.
        tagging_until = time.monotonic() + 3600
        while True:
            done = await retention.run_pass(hasher, dt.datetime.now(dt.UTC), tag=bool(tagging_until))
            if done.tagged == 0 and time.monotonic() > tagging_until:
                tagging_until = 0
            if done.under_previous_keys is not None:
                metrics.under_previous_hash_keys = done.under_previous_keys
            await asyncio.sleep(settings.purge_interval_seconds)

    purger: list[asyncio.Task] = []

    async def start() -> None:
        await replicas.start()
        await service.start()
        await internal_service.start()
        probe = metrics.database_probe(lambda: client.admin.command("ping"))
        service.watch(probe)
        internal_service.watch(probe)
        engine.start()
        purger.append(asyncio.create_task(purge_forever(), name="retention"))
        mode = "mutual TLS" if credentials else "plaintext, YZTC_DEVELOPMENT"
        print(
            f"aggregator listening on {settings.listen} (channels, {mode}) and {settings.internal_listen} (internal)",
            flush=True,
        )

    async def stop() -> None:
        await service.stop()
        await internal_service.stop()
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
