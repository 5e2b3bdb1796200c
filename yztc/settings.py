"""Settings common to every service, read from the environment (pydantic-settings).

Each service subclasses `CommonSettings` with its own env prefix; values are
validated at start-up, so a bad value stops the process before it serves.
"""
from __future__ import annotations

import json
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YZTC_", extra="ignore", frozen=True)

    log_level: str = "INFO"
    # none: no export; console: JSON lines to traces_file (or stderr; may
    # contain "{service}");
    # otlp: OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (a collector).
    traces_exporter: Literal["none", "console", "otlp"] = "none"
    traces_file: str = ""

    def describe(self) -> str:
        """The settings as one JSON line, with secrets shown as '***'."""
        shown = {}
        for name, value in self.model_dump().items():
            if isinstance(getattr(self, name), SecretStr):
                shown[name] = "***"
            else:
                shown[name] = value
        return json.dumps(shown, ensure_ascii=False, default=str)


class GrpcTlsSettings(BaseSettings):
    """Where a gRPC service finds its certificate; empty = plaintext (development)."""

    model_config = SettingsConfigDict(env_prefix="YZTC_", extra="ignore", frozen=True)

    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
