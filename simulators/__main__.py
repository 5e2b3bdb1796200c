"""`python -m simulators`: serve all four simulators from one process, each on
its own address, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web
from pydantic import ValidationError

from simulators import alipay_openapi, companies, operators, sms_centre
from simulators.cmpp_centre_settings import CmppCentreSettings
from simulators.cmpp_server import CmppServer
from simulators.scenario import load_scenario
from simulators.settings import SimulatorSettings, split_listen
from simulators.smpp_server import SmppServer
from simulators.sms_centre_settings import SmsCentreSettings
from yztc import event_loop
from yztc.logs import setup_logging

log = logging.getLogger("simulators")


async def main(
    settings: SimulatorSettings, smsc_settings: SmsCentreSettings, cmpp_settings: CmppCentreSettings
) -> None:
    scenario = load_scenario(settings.scenario or None)
    # The connectors' keys (docs/partner-api.md); without them every partner call is refused.
    keys = settings.partner_keys()
    if keys is None:
        log.warning("no YZTC_SIM_PARTNER_KEYS_FILE: every company and operator call will be refused (401)")
    # One SMS centre, three faces: SMPP 3.4 and CMPP 3.0 for the notifier, HTTP for inspection.
    centre = sms_centre.SmsCentre(scenario)
    smpp = SmppServer(centre, smsc_settings.sim_smpp_system_id, smsc_settings.sim_smpp_password)
    cmpp = CmppServer(centre, cmpp_settings.sim_cmpp_source_addr, cmpp_settings.sim_cmpp_shared_secret)
    apps = {
        "companies": (companies.create_app(scenario, partner_keys=keys), settings.sim_companies_listen),
        "operators": (operators.create_app(scenario, partner_keys=keys), settings.sim_operators_listen),
        "alipay": (
            alipay_openapi.create_app(
                scenario,
                app_id=settings.sim_alipay_app_id,
                app_public_key=settings.sim_alipay_app_public_key_file,
                alipay_private_key=settings.sim_alipay_private_key_file,
            ),
            settings.sim_alipay_listen,
        ),
        "sms_centre": (sms_centre.create_app(scenario, centre=centre), settings.sim_smsc_listen),
    }
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    runners: list[web.AppRunner] = []
    try:
        # SMPP and CMPP first, so they are up once the SMS centre's HTTP port answers (the
        # devstack waits on that); announced last, after the HTTP faces.
        smpp_host, smpp_port = await smpp.start(
            *split_listen(smsc_settings.sim_smpp_listen), tls=smsc_settings.tls_context()
        )
        cmpp_host, cmpp_port = await cmpp.start(*split_listen(cmpp_settings.sim_cmpp_listen))
        for name, (app, listen) in apps.items():
            # No access log: request lines carry query strings such as ?dest=<phone>.
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            host, port = split_listen(listen)
            await web.TCPSite(runner, host, port).start()
            bound_host, bound_port = runner.addresses[0][:2]
            print(f"simulators: {name} listening on http://{_url_host(bound_host)}:{bound_port}", flush=True)
        print(f"simulators: sms_centre_smpp listening on smpp://{_url_host(smpp_host)}:{smpp_port}", flush=True)
        print(f"simulators: sms_centre_cmpp listening on cmpp://{_url_host(cmpp_host)}:{cmpp_port}", flush=True)
        await stop.wait()
        log.info("stopping")
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        await smpp.stop()
        await cmpp.stop()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def run() -> int:
    try:
        settings = SimulatorSettings()
        smsc_settings = SmsCentreSettings()
        cmpp_settings = CmppCentreSettings()
    except ValidationError as e:
        for error in e.errors():
            env = "YZTC_" + "_".join(str(part) for part in error["loc"]).upper()
            print(f"simulators: {env}: {error['msg']}", file=sys.stderr)
        return 2
    setup_logging("simulators", settings.sim_log_level or settings.log_level)
    try:
        event_loop.run(main(settings, smsc_settings, cmpp_settings))
    except (ValueError, OSError) as e:
        # A bad scenario or a busy port: say which, without a stack trace.
        print(f"simulators: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run())
