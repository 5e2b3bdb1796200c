"""A connector's settings (env prefix YZTC_CONNECTOR_); which enterprise it
serves comes from the command line, so one image serves them all."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from yztc.settings import CommonSettings


class ConnectorSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="YZTC_CONNECTOR_", extra="ignore", frozen=True)

    listen: str = "127.0.0.1:0"
    # Base URL of the enterprise's API, e.g. https://api.example.com/yztc.
    # https:// only, unless YZTC_DEVELOPMENT=1 (the simulators serve http://).
    upstream_url: str
    upstream_timeout_seconds: float = 4.0
    # The most bytes of an enterprise's answer read; a longer answer is a
    # partner failure (UNAVAILABLE), never read on.
    upstream_max_answer_bytes: int = Field(65536, ge=1024, le=16 * 1024 * 1024)
    # Our credential for this enterprise (docs/partner-api.md): an Ed25519
    # private key, PKCS#8 PEM, that signs every request, and the key id the
    # enterprise knows its public half by. One key per connector; required.
    partner_key_file: Path | None = None
    partner_key_id: str = ""
    # Services allowed to call this connector (client certificate names).
    allowed_callers: frozenset[str] = frozenset({"aggregator"})
