"""Revoking a channel certificate as the runbook says ("Revoke a channel
certificate"), against the aggregator as the prod overlay deploys it: its
rendered environment and files (the dev Secrets standing in), ConfigMap
yztc-channels laid out and then updated the way the kubelet updates a
ConfigMap volume (a new timestamped folder, the `..data` link swapped in one
rename), and the check made with grpcurl as the runbook shows. The serial is
refused on the connection's next call, with no restart; the other channel is
not affected."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack import pki
from devstack.stack import free_port
from tests.deploy.conftest import ROOT, load_dev_secrets, tool
from tests.deploy.model import container_env, file_source, mounted_files, named, workloads

METHOD = "yztc.v1.AccountQueryService/ListEnterprises"
HEALTH = "grpc.health.v1.Health/Check"
CHANNELS = ("wechat-gzh-miit", "wechat-gzh-caict")  # two production channels of the site


def kubelet_write(folder: Path, files: dict[str, str]) -> None:
    """A ConfigMap volume as the kubelet's atomic writer makes and updates
    it: the files in a new `..<timestamp>` folder, `..data` pointing at it
    (swapped by one rename), each key a link `<key> -> ..data/<key>`."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.time_ns()}"
    stamp.mkdir()
    for key, text in files.items():
        (stamp / key).write_text(text, encoding="utf-8")
    data = folder / "..data"
    previous = os.readlink(data) if data.is_symlink() else None
    staging = folder / "..data_tmp"
    staging.symlink_to(stamp.name)
    os.replace(staging, data)
    for key in files:
        if not (folder / key).is_symlink():
            (folder / key).symlink_to(f"..data/{key}")
    if previous:
        shutil.rmtree(folder / previous)


@pytest.fixture(scope="module")
def grpcurl() -> Path:
    return tool("grpcurl")


def test_a_revoked_channel_certificate_is_refused_after_a_configmap_update(
    objects: dict[str, list[dict]], ferretdb: str, grpcurl: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    secrets = {
        s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
        for s in load_dev_secrets().dev_secrets(state)
    }
    certs = {channel: pki.issue_channel(state / "pki", channel) for channel in CHANNELS}

    objs = objects["prod"]
    (w,) = [w for w in workloads(objs) if w.name == "aggregator"]
    c = w.containers[0]
    env = container_env(objs, w, c, secrets)
    root = tmp_path / "root"

    def local(path: str) -> Path:
        return root / path.lstrip("/")

    # Every mounted file in place, the channels ConfigMap as the kubelet lays it out.
    channels_path = env["YZTC_AGGREGATOR_CHANNELS_FILE"]
    source = file_source(w, c, channels_path)
    assert source is not None and source[0] == "configMap"
    _, config_map, key, mount = source
    data = dict(named(objs, "ConfigMap", config_map)["data"])
    for path, text in mounted_files(objs, w, c, secrets).items():
        if not path.startswith(mount["mountPath"].rstrip("/") + "/"):
            local(path).parent.mkdir(parents=True, exist_ok=True)
            local(path).write_text(text, encoding="utf-8")
    document = json.loads(data[key])
    assert document["revoked_serials"] == [] and not set(CHANNELS) & document["channels"].keys()
    for channel in CHANNELS:  # onboarded as a site does, quotas like the gateway's
        document["channels"][channel] = {
            k: v for k, v in document["channels"]["alipay-gateway"].items() if k != "internal_caller"
        }
    kubelet_write(local(mount["mountPath"]), {**data, key: json.dumps(document, ensure_ascii=False)})

    public, internal = free_port(), free_port()
    process_env = {k: str(local(v)) if v.startswith("/etc/yztc/") else v for k, v in env.items()}
    process_env.update(
        YZTC_AGGREGATOR_LISTEN=f"127.0.0.1:{public}",
        YZTC_AGGREGATOR_INTERNAL_LISTEN=f"127.0.0.1:{internal}",
        MONGODB_URI=ferretdb.rstrip("/") + "/revocation",
        YZTC_METRICS_PORT="0",
        YZTC_TRACES_EXPORTER="none",
        PATH=os.environ["PATH"],
        PYTHONUNBUFFERED="1",
    )
    assert "YZTC_DEVELOPMENT" not in process_env
    ca = process_env["YZTC_TLS_CA"]

    def call(channel: str, method: str = METHOD) -> subprocess.CompletedProcess[str]:
        cert, key_file = certs[channel]
        return subprocess.run(
            [str(grpcurl), "-cacert", ca, "-cert", str(cert), "-key", str(key_file), "-authority", "aggregator"]
            + ["-max-time", "5", f"127.0.0.1:{public}", method],
            capture_output=True,
            text=True,
            timeout=30,
        )

    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator"],
        cwd=ROOT,
        env=process_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while (done := call(CHANNELS[0])).returncode != 0 and time.monotonic() < deadline:
            assert proc.poll() is None, "the aggregator exited"
            time.sleep(0.3)
        assert done.returncode == 0, done.stderr
        assert len(json.loads(done.stdout)["enterprises"]) == 8

        # The runbook's step 2: the serial as openssl prints it, into the ConfigMap.
        document["revoked_serials"] = [pki.serial_hex(certs[CHANNELS[0]][0]).upper()]
        kubelet_write(local(mount["mountPath"]), {**data, key: json.dumps(document, ensure_ascii=False)})

        deadline = time.monotonic() + 10
        while (refused := call(CHANNELS[0])).returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.3)
        for answer in (refused, call(CHANNELS[0], HEALTH)):
            assert answer.returncode != 0
            assert "Unauthenticated" in answer.stderr and "渠道证书已吊销" in answer.stderr, answer.stderr
        other = call(CHANNELS[1])
        assert other.returncode == 0, other.stderr
        assert proc.poll() is None, "revocation needs no restart"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
