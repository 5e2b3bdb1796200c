"""The gateway's settings (env prefix YZTC_GATEWAY_), validated at start."""
from __future__ import annotations

from pydantic import AliasChoices, Field, FilePath, PositiveFloat, PositiveInt
from pydantic_settings import SettingsConfigDict

from yztc.settings import CommonSettings, GrpcTlsSettings


class GatewaySettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="YZTC_GATEWAY_", extra="ignore", frozen=True)

    listen: str = "127.0.0.1:8080"
    aggregator_target: str = "127.0.0.1:50051"
    # The name checked in the aggregator's certificate (we dial an address).
    aggregator_server_name: str = "aggregator"
    call_timeout_seconds: PositiveFloat = 5.0
    alipay_url: str = "http://127.0.0.1:9103/gateway.do"
    alipay_app_id: str = "2021000000000001"
    # PKCS#1 PEM: the only private-key form alipay-sdk-python loads.
    alipay_app_private_key_file: FilePath
    # SPKI PEM of Alipay's (or its simulator's) answer-signing key.
    alipay_public_key_file: FilePath
    alipay_timeout_seconds: PositiveFloat = 5.0
    session_ttl_seconds: PositiveInt = 7200
    max_body_bytes: PositiveInt = 16384
    # Shared by every service, hence no prefix; the field name also works
    # as a keyword so tests can build settings directly.
    mongodb_uri: str = Field(
        "mongodb://127.0.0.1:27018/yztc",
        validation_alias=AliasChoices("MONGODB_URI", "mongodb_uri"),
    )
    # Client identity on the channel API (env YZTC_TLS_*); empty = plaintext.
    tls: GrpcTlsSettings = Field(default_factory=GrpcTlsSettings)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)
