"""The notifier over CMPP 3.0 (YZTC_NOTIFIER_SMSC_PROTOCOL=cmpp30), as a real
process with a real database: a long result SMS through SMSGate's sms-core
(an ISMG we did not write), decoded there to the same text, and settled
DELIVERED by its reports; and through our simulator's CMPP face, where the
inspection API shows it with `source` = Src_Id."""

from __future__ import annotations

import time

from tests.integration.test_sms_cmpp_peer import SECRET, SP_ID, _free_port, sms_core  # noqa: F401  (fixture)
from tests.integration.test_sms_support import (  # noqa: F401  (fixtures)
    PHONE,
    RESULT_TEXT,
    STATES,
    alipay_keys,
    notifier_factory,
    send,
    sms_centre_factory,
    wait_for_states,
)

UNUSED_SMPP_PORT = 2775  # the SMPP settings keep their defaults; the link is CMPP


def _cmpp_env(port: int) -> dict[str, str]:
    return {
        # sms-core writes report times in this machine's time zone (Java's
        # default), not China time as an ISMG does.
        "YZTC_NOTIFIER_CMPP_UTC_OFFSET_MINUTES": str(time.localtime().tm_gmtoff // 60),
        "YZTC_NOTIFIER_SMSC_PROTOCOL": "cmpp30",
        "YZTC_NOTIFIER_CMPP_PORT": str(port),
        "YZTC_NOTIFIER_CMPP_SOURCE_ADDR": SP_ID,
        "YZTC_NOTIFIER_CMPP_SHARED_SECRET": SECRET,
        "YZTC_NOTIFIER_CMPP_SERVICE_ID": "YZTC",
    }


async def test_a_result_sms_over_cmpp_through_sms_core_is_delivered(sms_core, notifier_factory):
    port = _free_port()
    peer = sms_core("server", str(port), SP_ID, SECRET)
    await peer.wait_for("listening", 1)
    notifier = notifier_factory(UNUSED_SMPP_PORT, extra_env=_cmpp_env(port))
    async with notifier.channel() as channel:
        accepted = await send(channel, "result:cmpp-1", PHONE, RESULT_TEXT)
        # The reports may settle it before Send answers.
        assert STATES[accepted.state] in {"SENT", "DELIVERED"} and len(accepted.smsc_message_ids) == 3
        final = (await wait_for_states(channel, ["result:cmpp-1"], {"DELIVERED", "FAILED"}))["result:cmpp-1"]
    [message] = await peer.wait_for("message", 1)
    assert (message["text"], message["dest"], message["src_id"], message["parts"]) == (
        RESULT_TEXT,
        PHONE,
        "10699000",
        3,
    )
    assert STATES[final.state] == "DELIVERED"
    given = sorted(str(int(s["msg_id"], 16)) for s in peer.of("submit"))
    assert sorted(final.smsc_message_ids) == given


async def test_a_result_sms_over_cmpp_through_the_simulator_is_delivered(sms_centre_factory, notifier_factory):
    centre = sms_centre_factory()
    urls = dict(line.removeprefix("simulators: ").split(" listening on ") for line in centre.proc.lines)
    cmpp_port = int(urls["sms_centre_cmpp"].rsplit(":", 1)[1])
    env = {
        **_cmpp_env(cmpp_port),
        "YZTC_NOTIFIER_CMPP_SOURCE_ADDR": "901234",
        "YZTC_NOTIFIER_CMPP_SHARED_SECRET": "yztc-dev",
        "YZTC_NOTIFIER_CMPP_UTC_OFFSET_MINUTES": "480",  # the simulator writes China time
    }
    notifier = notifier_factory(UNUSED_SMPP_PORT, extra_env=env)
    async with notifier.channel() as channel:
        accepted = await send(channel, "result:cmpp-2", PHONE, RESULT_TEXT)
        # The reports may settle it before Send answers.
        assert STATES[accepted.state] in {"SENT", "DELIVERED"} and len(accepted.smsc_message_ids) == 3
        final = (await wait_for_states(channel, ["result:cmpp-2"], {"DELIVERED", "FAILED"}))["result:cmpp-2"]
    assert STATES[final.state] == "DELIVERED"
    [message] = await centre.messages(PHONE)
    assert (message["source"], message["text"], message["segments"]) == ("10699000", RESULT_TEXT, 3)
