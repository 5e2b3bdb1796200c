"""Fixtures of the deployment tests: the tools (built with `make` when
missing, as the ferretdb fixture does) and each overlay built once."""

from __future__ import annotations

import base64
import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
TOOLS = ROOT / ".tools" / "bin"


def tool(name: str) -> Path:
    """A Go tool of mk/k8s.mk or mk/monitoring.mk, installed with `make <name>`
    if missing (make also replaces a promtool of another version)."""
    path = TOOLS / name
    if not path.exists() or name == "promtool":
        subprocess.run(["make", "-s", name], cwd=ROOT, check=True)
    return path


@pytest.fixture(scope="session")
def kustomize() -> Path:
    return tool("kustomize")


@pytest.fixture(scope="session")
def kube_score() -> Path:
    return tool("kube-score")


@pytest.fixture(scope="session")
def promtool() -> Path:
    return tool("promtool")


def build(kustomize: Path, overlay: str) -> str:
    """`kustomize build` of an overlay with kustomize's defaults (what
    `kubectl apply -k` and Argo CD run): no flag loosens the load restrictor."""
    done = subprocess.run(
        [str(kustomize), "build", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"kustomize build {overlay} failed:\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def rendered(kustomize: Path) -> dict[str, str]:
    """Each overlay's manifests as kustomize prints them."""
    return {overlay: build(kustomize, overlay) for overlay in OVERLAYS}


def load_dev_secrets() -> ModuleType:
    """overlays/dev/dev_secrets.py as a module."""
    path = K8S / "overlays" / "dev" / "dev_secrets.py"
    spec = importlib.util.spec_from_file_location("dev_secrets", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def dev_secret_objects(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The dev overlay's Secrets, made afresh (keys and PKI) in a temporary folder."""
    return load_dev_secrets().dev_secrets(tmp_path_factory.mktemp("k8s-dev"))


@pytest.fixture(scope="session")
def stand_in_secrets(dev_secret_objects: list[dict]) -> dict[str, dict[str, str]]:
    """The dev Secrets, decoded; prod refers to the same names and keys."""
    return {
        s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
        for s in dev_secret_objects
    }


@pytest.fixture(scope="session")
def objects(rendered: dict[str, str]) -> dict[str, list[dict]]:
    """Each overlay's objects."""
    return {overlay: [doc for doc in yaml.safe_load_all(text) if doc] for overlay, text in rendered.items()}
