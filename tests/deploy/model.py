"""A small reading of built manifests for the policy tests: workloads and
their pods, label selectors, and what the NetworkPolicies admit."""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field

WORKLOAD_KINDS = ("Deployment", "StatefulSet")


@dataclass
class Workload:
    kind: str
    name: str
    spec: dict
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def pod(self) -> dict:
        return self.spec["template"]["spec"]

    @property
    def containers(self) -> list[dict]:
        return self.pod["containers"]

    def ports(self) -> dict[int, str]:
        """containerPort -> name, over all containers."""
        return {p["containerPort"]: p.get("name", "") for c in self.containers for p in c.get("ports", [])}

    def port_number(self, port: int | str) -> int:
        if isinstance(port, int):
            return port
        named = {name: number for number, name in self.ports().items()}
        return named[port]


def workloads(objs: list[dict]) -> list[Workload]:
    return [
        Workload(o["kind"], o["metadata"]["name"], o["spec"], o["spec"]["template"]["metadata"].get("labels", {}))
        for o in objs
        if o["kind"] in WORKLOAD_KINDS
    ]


def of_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def named(objs: list[dict], kind: str, name: str) -> dict:
    found = [o for o in of_kind(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def selects(selector: dict | None, labels: dict[str, str]) -> bool:
    """Kubernetes LabelSelector semantics; {} selects everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# --- NetworkPolicy -----------------------------------------------------------
# A peer is the name of a workload of this namespace, "ns:<name>" for pods of
# another namespace (by its kubernetes.io/metadata.name), "ip:<cidr>" for an
# ipBlock, or "any" for a rule that names no peer.


def _peers(rule_peers: list[dict] | None, ws: list[Workload]) -> set[str]:
    if not rule_peers:
        return {"any"}
    found: set[str] = set()
    for peer in rule_peers:
        if "ipBlock" in peer:
            found.add(f"ip:{peer['ipBlock']['cidr']}")
        elif "namespaceSelector" in peer:
            name = (peer["namespaceSelector"].get("matchLabels") or {}).get("kubernetes.io/metadata.name", "*")
            found.add(f"ns:{name}")
        else:
            found |= {w.name for w in ws if selects(peer["podSelector"], w.labels)}
    return found


def _rule_ports(rule: dict, target: Workload | None) -> set[int] | None:
    """The rule's port numbers; None = every port."""
    if not rule.get("ports"):
        return None
    ports = set()
    for p in rule["ports"]:
        port = p["port"]
        ports.add(target.port_number(port) if target is not None else port)
    return ports


def policies_for(objs: list[dict], w: Workload, direction: str) -> list[dict]:
    return [
        p
        for p in of_kind(objs, "NetworkPolicy")
        if direction in p["spec"].get("policyTypes", ["Ingress"]) and selects(p["spec"]["podSelector"], w.labels)
    ]


def ingress_admitted(objs: list[dict], w: Workload) -> dict[int, set[str]]:
    """For each port the workload listens on: who may connect."""
    ws = workloads(objs)
    admitted: dict[int, set[str]] = {port: set() for port in w.ports()}
    for policy in policies_for(objs, w, "Ingress"):
        for rule in policy["spec"].get("ingress") or []:
            peers = _peers(rule.get("from"), ws)
            ports = _rule_ports(rule, w)
            for port in admitted:
                if ports is None or port in ports:
                    admitted[port] |= peers
    return admitted


def egress_allows(objs: list[dict], w: Workload, to: str, port: int) -> bool:
    """May `w` open a connection to `to` (a peer as above; "ip:<address>"
    is checked against ipBlocks and their exceptions) on `port`?"""
    ws = workloads(objs)
    for policy in policies_for(objs, w, "Egress"):
        for rule in policy["spec"].get("egress") or []:
            ports = _rule_ports(rule, None)
            if ports is not None and port not in ports:
                continue
            if not rule.get("to"):
                return True
            for peer in rule["to"]:
                if to.startswith("ip:") and "ipBlock" in peer:
                    address = ipaddress.ip_address(to[3:])
                    block = peer["ipBlock"]
                    if address in ipaddress.ip_network(block["cidr"]) and not any(
                        address in ipaddress.ip_network(e) for e in block.get("except", [])
                    ):
                        return True
                elif "namespaceSelector" not in peer and "podSelector" in peer:
                    if to in {x.name for x in ws if selects(peer["podSelector"], x.labels)}:
                        return True
                elif "namespaceSelector" in peer and to.startswith("ns:"):
                    if to in _peers([peer], ws):
                        return True
    return False


# --- what a container sees ----------------------------------------------------

POD_IP = "10.0.0.7"


def config_map(objs: list[dict], name: str) -> dict[str, str]:
    return named(objs, "ConfigMap", name).get("data", {})


def _expand(value: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion (undefined references stay as they are)."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)


def container_env(objs: list[dict], w: Workload, c: dict, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment of container `c` as the kubelet would build it;
    `secrets` stands in for the cluster's Secrets (name -> key -> value)."""
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_map(objs, source["configMapRef"]["name"]))
        else:
            env.update(secrets[source["secretRef"]["name"]])
    for var in c.get("env", []):
        if "value" in var:
            env[var["name"]] = _expand(var["value"], env)
            continue
        ref = var["valueFrom"]
        if "configMapKeyRef" in ref:
            env[var["name"]] = config_map(objs, ref["configMapKeyRef"]["name"])[ref["configMapKeyRef"]["key"]]
        elif "secretKeyRef" in ref:
            key = ref["secretKeyRef"]
            if key.get("optional") and key["key"] not in secrets.get(key["name"], {}):
                continue
            env[var["name"]] = secrets[key["name"]][key["key"]]
        else:
            path = ref["fieldRef"]["fieldPath"]
            label = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
            env[var["name"]] = w.labels[label[1]] if label else {"status.podIP": POD_IP}[path]
    return env


def args(c: dict, env: dict[str, str]) -> list[str]:
    return [_expand(a, env) for a in c.get("args", [])]


def mounted_files(objs: list[dict], w: Workload, c: dict, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """Path -> content of every file the container's ConfigMap and Secret
    volumes put in its filesystem."""
    volumes = {v["name"]: v for v in w.pod.get("volumes", [])}
    files: dict[str, str] = {}
    for mount in c.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})  # else a volumeClaimTemplate
        if "configMap" in volume:
            data, source = config_map(objs, volume["configMap"]["name"]), volume["configMap"]
        elif "secret" in volume:
            data, source = secrets[volume["secret"]["secretName"]], volume["secret"]
        else:
            continue
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            files[f"{mount['mountPath'].rstrip('/')}/{item['path']}"] = data[item["key"]]
    return files


def file_source(w: Workload, c: dict, path: str) -> tuple[str, str, str, dict] | None:
    """Where the file at `path` in container `c` comes from: ("secret" or
    "configMap", the object's name, its key, the volumeMount); None if no
    Secret or ConfigMap volume puts it there."""
    volumes = {v["name"]: v for v in w.pod.get("volumes", [])}
    for mount in c.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        for kind, name_field in (("secret", "secretName"), ("configMap", "name")):
            if kind not in volume:
                continue
            source = volume[kind]
            root = mount["mountPath"].rstrip("/")
            if mount.get("subPath"):
                if path == root:
                    return kind, source[name_field], mount["subPath"], mount
                continue
            for item in source.get("items") or []:
                if f"{root}/{item['path']}" == path:
                    return kind, source[name_field], item["key"], mount
            if not source.get("items") and path.startswith(root + "/") and "/" not in path[len(root) + 1 :]:
                return kind, source[name_field], path[len(root) + 1 :], mount
    return None


def probe_command(probe: dict, env: dict[str, str]) -> list[str]:
    """An exec probe's argv as it runs: a `sh -c` script split as the shell
    splits it, with $VAR / ${VAR} taken from the container's environment
    (exec probes get no $(VAR) expansion from the kubelet) and a leading
    `exec` dropped."""
    command = list(probe["exec"]["command"])
    if command[:2] != ["sh", "-c"]:
        return command
    script = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m[1], ""), command[2])
    argv = shlex.split(script)
    return argv[1:] if argv and argv[0] == "exec" else argv
