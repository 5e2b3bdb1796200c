"""Settings common to every service, read from the environment (pydantic-settings).

Each service subclasses `CommonSettings` with its own env prefix; values are
validated at start-up, so a bad value stops the process before it serves.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    # hide_input_in_errors: a malformed key or URI is never printed back at start (M4).
    model_config = SettingsConfigDict(env_prefix="YZTC_", extra="ignore", frozen=True, hide_input_in_errors=True)

    # Common to every service, so named without the service's prefix.
    # The one explicit development switch (issue 13, "fail closed"): only when
    # it is set may a service run without certificates (plaintext gRPC, with a
    # warning at every start), call partners over http://, or accept the
    # development keys and channels. Unset (production), each is refused at start.
    development: bool = Field(False, validation_alias="YZTC_DEVELOPMENT")
    log_level: str = Field("INFO", validation_alias="YZTC_LOG_LEVEL")
    # none: no export; console: JSON lines to traces_file (or stderr; may
    # contain "{service}"); otlp: OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT.
    traces_exporter: Literal["none", "console", "otlp"] = Field("none", validation_alias="YZTC_TRACES_EXPORTER")
    traces_file: str = Field("", validation_alias="YZTC_TRACES_FILE")
    # Head sampling with an exporter: the share of root spans (gateway
    # requests, the aggregator's rounds of queries that came without a trace)
    # recorded, 0..1; every hop below follows its parent's decision.
    traces_sample_ratio: float = Field(0.01, ge=0.0, le=1.0, validation_alias="YZTC_TRACES_SAMPLE_RATIO")
    # A span per MongoDB command inside sampled traces (+0.07 ms CPU per
    # command): for debugging, with an exporter only.
    trace_db: bool = Field(False, validation_alias="YZTC_TRACE_DB")
    # Prometheus metrics at http://metrics_host:metrics_port/metrics; 0 = off.
    metrics_port: int = Field(0, validation_alias="YZTC_METRICS_PORT")
    metrics_host: str = Field("127.0.0.1", validation_alias="YZTC_METRICS_HOST")

    def describe(self) -> str:
        """The settings as one JSON line, safe to log (M4): every SecretStr
        (nested too) shown as '***', and the password of every URI-valued
        setting (`scheme://user:password@host`, anywhere in a value) as
        `scheme://user:***@host`."""
        return json.dumps(_masked(self), ensure_ascii=False, default=str)


# The userinfo's password in any URI: scheme://user:password@ (RFC 3986 3.2.1).
_URI_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^@/?#\s]*(?=@)")


def mask_uri_passwords(text: str) -> str:
    """`mongodb://user:pw@host/db` → `mongodb://user:***@host/db`, wherever it occurs."""
    return _URI_PASSWORD.sub(r"\g<head>***", text)


def _masked(value: Any) -> Any:
    """A JSON-able copy of a setting value with secrets masked."""
    if isinstance(value, SecretStr):
        return "***"
    if isinstance(value, BaseSettings):
        return {name: _masked(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_masked(v) for v in value]
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if hasattr(value, "model_dump"):
        return _masked(value.model_dump())
    return mask_uri_passwords(str(value))


class GrpcTlsSettings(BaseSettings):
    """Where a gRPC service finds its internal identity (yztc/tls.py): all
    three are required; empty is allowed only with YZTC_DEVELOPMENT=1
    (plaintext on loopback)."""

    model_config = SettingsConfigDict(env_prefix="YZTC_", extra="ignore", frozen=True)

    development: bool = Field(False, validation_alias=AliasChoices("YZTC_DEVELOPMENT", "development"))

    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    # Internal certificates revoked by serial (yztc.revoked_certificates),
    # checked by servers that admit internal callers; empty: none.
    tls_revoked_serials_file: str = ""


def refuse_outside_development(service: str, development: bool, refusals: Callable[[], list[str]]) -> None:
    """Fail closed (issue 13, L7 and M8): outside development, a service
    whose settings `refusals()` names (one line each) does not start; each
    is printed to stderr and the process exits with status 2, as for
    settings that do not parse."""
    found = [] if development else refusals()
    if found:
        lines = "\n".join(f"  - {r}" for r in found)
        print(f"{service}: refusing to start outside YZTC_DEVELOPMENT:\n{lines}", file=sys.stderr)
        sys.exit(2)
