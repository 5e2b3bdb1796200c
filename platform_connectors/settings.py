"""A connector's settings (env prefix YZTC_CONNECTOR_); which enterprise it
serves comes from the command line, so one image serves them all."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from yztc.settings import CommonSettings


class ConnectorSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="YZTC_CONNECTOR_", extra="ignore", frozen=True)

    listen: str = "127.0.0.1:0"
    # Base URL of the enterprise's API, e.g. http://127.0.0.1:9101/companies/tencent
    upstream_url: str
    upstream_timeout_seconds: float = 4.0
    # Services allowed to call this connector (client certificate names).
    allowed_callers: frozenset[str] = frozenset({"aggregator"})
