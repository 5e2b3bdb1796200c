"""The notifier's settings (env prefix YZTC_NOTIFIER_)."""
from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from yztc.settings import CommonSettings


class NotifierSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="YZTC_NOTIFIER_", extra="ignore", frozen=True)

    listen: str = "127.0.0.1:50052"
    mongodb_uri: str = Field("mongodb://127.0.0.1:27018/yztc", validation_alias="MONGODB_URI")
    smsc_url: str = "http://127.0.0.1:9104"
    source_addr: str = "10699000"
    smsc_timeout_seconds: float = 5.0
