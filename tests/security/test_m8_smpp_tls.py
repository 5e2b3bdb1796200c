"""M8: the SMPP link in clear.

The review: `smpp34.Client` over plain TCP; the bind's password, the codes,
the numbers and the result texts cross in clear (a capture on the path shows
`bind_transceiver(system_id, password)` and the code in UCS-2).

Now the notifier can speak SMPP over TLS (YZTC_NOTIFIER_SMSC_TLS, the centre's
CA in YZTC_NOTIFIER_SMSC_TLS_CA_FILE; the prod overlay sets it), and checks the
centre's certificate: through the real notifier process against the
simulator serving SMPP over TLS only, a message is delivered and settled by
its receipts; a notifier that does not trust the centre's CA, or that speaks
in clear, never binds (nothing is sent, the message waits in the queue), and
what the centre receives in clear is the TLS handshake, never a bind. And
outside development a link in clear (SMPP without TLS, or CMPP 3.0) does not
start unless YZTC_NOTIFIER_SMSC_PRIVATE_LINE declares a private line."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from devstack import pki
from tests.integration.test_sms_support import (  # noqa: F401  (fixtures)
    PHONE,
    RESULT_TEXT,
    SMPP_PASSWORD,
    STATES,
    alipay_keys,
    notifier_factory,
    send,
    sms_centre_factory,
    wait_for_states,
)
from tests.security.services import clean_env, internal_identity, run_for, service_env, start_until, stop

CODE_TEXT = "【一证通查】您的验证码为135790，5分钟内有效。验证码请勿告知他人。"


def _tls_centre(sms_centre_factory, folder):
    cert, key = pki.issue(folder, "smsc", server=True)
    centre = sms_centre_factory(
        extra_env={"YZTC_SIM_SMPP_TLS_CERT_FILE": str(cert), "YZTC_SIM_SMPP_TLS_KEY_FILE": str(key)}
    )
    return centre, folder / "ca.pem"


async def test_smpp_over_tls_delivers_and_settles(tmp_path, sms_centre_factory, notifier_factory):
    centre, ca = _tls_centre(sms_centre_factory, tmp_path / "pki")
    notifier = notifier_factory(
        centre.smpp_port, smsc_tls="true", smsc_tls_ca_file=str(ca), smsc_tls_server_name="localhost"
    )
    async with notifier.channel() as channel:
        accepted = await send(channel, "result:tls-1", PHONE, RESULT_TEXT)
        assert STATES[accepted.state] in {"SENT", "DELIVERED"}
        final = await wait_for_states(channel, ["result:tls-1"], {"DELIVERED", "FAILED"})
    assert STATES[final["result:tls-1"].state] == "DELIVERED"
    [message] = await centre.messages(PHONE)
    assert message["text"] == RESULT_TEXT
    assert (await centre.counters())["binds"] == 1


async def test_an_untrusted_centre_or_a_link_in_clear_never_binds(tmp_path, sms_centre_factory, notifier_factory):
    centre, _ = _tls_centre(sms_centre_factory, tmp_path / "pki")
    # A centre whose certificate chains to no CA the notifier trusts (the
    # system's roots only): refused at the handshake.
    untrusted = notifier_factory(centre.smpp_port, name="untrusted", smsc_tls="true")
    # A notifier that speaks in clear to the TLS face.
    clear = notifier_factory(centre.smpp_port, name="clear")
    for notifier, message_id in ((untrusted, "code:tls-untrusted"), (clear, "code:tls-clear")):
        async with notifier.channel() as channel:
            answer = await send(channel, message_id, PHONE, CODE_TEXT)
            assert STATES[answer.state] == "PENDING"  # queued: no session to send on
    await asyncio.sleep(1.0)
    assert await centre.messages(PHONE) == []
    counters = await centre.counters()
    assert counters.get("binds", 0) == 0 and counters.get("submit_sm", 0) == 0
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.proc.log.read_text()


def test_what_crosses_in_clear_is_a_handshake_never_a_bind(tmp_path, sms_centre_factory):
    centre, _ = _tls_centre(sms_centre_factory, tmp_path / "pki")
    # A bind in clear, as the old link sent it: the TLS face takes it for a
    # broken handshake and closes; no bind_transceiver_resp comes back.
    body = b"yztc\x00" + SMPP_PASSWORD.encode() + b"\x00\x00\x34\x00\x00\x00"
    bind = struct.pack(">IIII", 16 + len(body), 0x09, 0, 1) + body
    with socket.create_connection(("127.0.0.1", centre.smpp_port), timeout=5) as conn:
        conn.sendall(bind)
        answer = b""
        try:
            while chunk := conn.recv(4096):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert len(answer) < 16 or struct.unpack(">I", answer[4:8])[0] != 0x80000009


IN_CLEAR = {
    "SMPP without TLS": ({}, "YZTC_NOTIFIER_SMSC_TLS=true"),
    # CMPP 3.0 has no TLS: only a declared private line lets it start.
    "CMPP 3.0": (
        {
            "YZTC_NOTIFIER_SMSC_PROTOCOL": "cmpp30",
            "YZTC_NOTIFIER_CMPP_HOST": "127.0.0.1",
            "YZTC_NOTIFIER_CMPP_SOURCE_ADDR": "901234",
            "YZTC_NOTIFIER_CMPP_SHARED_SECRET": "s3cret!",
        },
        "YZTC_NOTIFIER_SMSC_PRIVATE_LINE=true",
    ),
}


@pytest.mark.parametrize("case", IN_CLEAR)
def test_production_refuses_a_link_in_clear_unless_it_is_a_declared_private_line(tmp_path, mongodb_uri, case):
    """Fail closed: outside YZTC_DEVELOPMENT a link in clear no longer starts
    with a warning; it starts only once YZTC_NOTIFIER_SMSC_PRIVATE_LINE says
    the line is private (the control: the same settings then run)."""
    changes, named = IN_CLEAR[case]
    env = clean_env(
        **service_env("notifier", tmp_path, mongodb_uri),
        **internal_identity(tmp_path / "pki", "sms-notifier"),
        **changes,
    )
    status, out = run_for(["sms_notifier"], env, 20)
    assert status not in (None, 0), out[-2000:]
    assert "refusing to start outside YZTC_DEVELOPMENT" in out and named in out, out[-2000:]
    assert "s3cret!" not in out
    started = start_until(["sms_notifier"], {**env, "YZTC_NOTIFIER_SMSC_PRIVATE_LINE": "true"}, "listening on")
    _, err = stop(started)
    assert "refusing" not in err
