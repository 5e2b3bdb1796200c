"""What the gateway and Alipay-simulator tests share: key pairs generated
once per module (development keys, as `make run` makes them), and the one
gateway fixture (`gateways`, tests/integration/gateways.py) that starts
gateways and their backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devstack.secrets import rsa_pair
from tests.integration.gateways import Gateways


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Our app's pair, the simulated Alipay's, and a stranger's (PKCS#1
    private, SPKI public): `<name>_private`, `<name>_public`."""
    folder = tmp_path_factory.mktemp("keys")
    found: dict[str, Path] = {}
    for name in ("app", "alipay", "rogue"):
        found[f"{name}_private"], found[f"{name}_public"] = rsa_pair(folder, name)
    return found


@pytest.fixture(scope="module")
def key_files(keys: dict[str, Path]) -> tuple[Path, Path]:
    """What a gateway is configured with: our private key, Alipay's public one."""
    return keys["app_private"], keys["alipay_public"]


@pytest.fixture
async def gateways(mongodb_uri: str, keys: dict[str, Path]) -> AsyncIterator[Gateways]:
    started = Gateways(mongodb_uri, keys)
    try:
        yield started
    finally:
        await started.stop()
