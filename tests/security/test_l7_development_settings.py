"""L7 (gateway and image): outside YZTC_DEVELOPMENT the gateway started
with an http:// Alipay URL, the demo app id and the simulator's keys, and
the production image carried the simulators (the SMS-centre simulator
serves every code over HTTP). Now `python -m gateway` refuses each at start
(and plain HTTP served off loopback, the ingress's hop)
(non-zero exit, a message naming the setting), and the image's default
target holds no simulators/ (tests/deploy/test_dockerfile.py checks the
stages; here the rule is read from the Dockerfile the build uses)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.deploy.test_dockerfile import production, stage_name, stages
from tests.security.services import clean_env, internal_identity, run_for, service_env, start_until, stop


def _env(tmp_path: Path, mongodb_uri: str, **changes: str) -> dict[str, str]:
    env = service_env("gateway", tmp_path / "keys", mongodb_uri)
    env.update(internal_identity(tmp_path / "pki", "gateway"))
    env.update(changes)
    return clean_env(**{k: v for k, v in env.items() if v != ""})


def _simulator_key(tmp_path: Path) -> str:
    """The Alipay simulator's public key as devstack names it."""
    target = tmp_path / "dev" / "alipay-sim-public.pem"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "keys" / "alipay-public.pem", target)
    return str(target)


CASES = {
    "http Alipay URL": (lambda tmp: {"YZTC_GATEWAY_ALIPAY_URL": "http://alipay.example/gateway.do"}, "ALIPAY_URL"),
    "demo app id": (lambda tmp: {"YZTC_GATEWAY_ALIPAY_APP_ID": "2021000000000001"}, "ALIPAY_APP_ID"),
    "simulator key": (lambda tmp: {"YZTC_GATEWAY_ALIPAY_PUBLIC_KEY_FILE": _simulator_key(tmp)}, "PUBLIC_KEY_FILE"),
    "no hash key": (lambda tmp: {"YZTC_GATEWAY_HASH_KEYS": "", "YZTC_GATEWAY_HASH_KEY_ID": ""}, "HASH_KEYS"),
    "no H5 authorization page": (lambda tmp: {"YZTC_GATEWAY_ALIPAY_AUTHORIZE_URL": ""}, "ALIPAY_AUTHORIZE_URL"),
    # Citizens' data from the ingress in clear (YZTC_GATEWAY_SERVE_TLS unset off loopback).
    "plain HTTP off loopback": (lambda tmp: {"YZTC_GATEWAY_LISTEN": "0.0.0.0:0"}, "SERVE_TLS"),
}


@pytest.mark.parametrize("case", CASES)
def test_production_refuses_development_settings(tmp_path: Path, mongodb_uri: str, case: str) -> None:
    make_changes, named = CASES[case]
    env = _env(tmp_path, mongodb_uri)
    env.update(make_changes(tmp_path))
    env = {k: v for k, v in env.items() if v != ""}
    status, out = run_for(["gateway"], env, 20)
    assert status not in (None, 0), out
    assert "refusing to start outside YZTC_DEVELOPMENT" in out and named in out, out
    assert "gateway listening" not in out


def test_the_same_settings_start_in_development_and_valid_ones_in_production(tmp_path: Path, mongodb_uri: str) -> None:
    # Production with production settings starts.
    proc = start_until(["gateway"], _env(tmp_path, mongodb_uri), "gateway listening")
    stop(proc)
    # Development accepts the development settings.
    env = _env(tmp_path, mongodb_uri, YZTC_DEVELOPMENT="1")
    for make_changes, _ in CASES.values():
        env.update(make_changes(tmp_path))
    proc = start_until(["gateway"], {k: v for k, v in env.items() if v != ""}, "gateway listening")
    stop(proc)


def test_the_production_image_has_no_simulators() -> None:
    """What `docker build .` makes (the last stage, and the stages it is
    built from) copies no simulators/; the `dev` target does."""
    _, all_stages = stages()
    final = production(all_stages)
    by_name = {stage_name(s): s for s in all_stages}
    copied_from = {rest.split()[0].removeprefix("--from=") for word, rest in final if word == "COPY"}
    for stage in [final, *(by_name[n] for n in copied_from if n in by_name)]:
        assert not any(word == "COPY" and "simulators" in rest for word, rest in stage)
    assert any(word == "COPY" and "simulators" in rest for word, rest in by_name["dev"])
