"""The gateway's settings (env prefix YZTC_GATEWAY_), validated at start."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    Field,
    FilePath,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    field_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from yztc.settings import CommonSettings, GrpcTlsSettings

_LIMIT = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*s?\s*")


class RateLimit(BaseModel):
    """At most `count` events per fixed window of `seconds`."""

    model_config = {"frozen": True}

    count: PositiveInt
    seconds: PositiveInt

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}s"


def _rate_limit(value: object) -> object:
    """ "600/60" (or "600/60s"): 600 per 60 seconds; models and dicts pass as they are."""
    if isinstance(value, str):
        match = _LIMIT.fullmatch(value)
        if match is None:
            raise ValueError("a rate limit is written COUNT/SECONDS, e.g. 600/60")
        return {"count": int(match[1]), "seconds": int(match[2])}
    return value


# NoDecode: the env value is "600/60", not JSON.
Limit = Annotated[RateLimit, NoDecode, BeforeValidator(_rate_limit)]


class GatewaySettings(CommonSettings):
    # hide_input_in_errors: a malformed AES key must not be printed back.
    model_config = SettingsConfigDict(
        env_prefix="YZTC_GATEWAY_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

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
    # The app's AES content key (base64, as the Alipay console shows it):
    # my.getPhoneNumber answers are encrypted with it.
    alipay_aes_key: SecretStr
    alipay_timeout_seconds: PositiveFloat = 5.0
    # Which of Alipay's ids keys a user (sessions, rate limits, who may read
    # a query) when alipay.system.oauth.token answers both; an app on Alipay's
    # openid scheme gets open_id only, and then that is the key whatever this
    # says (gateway.alipay_login). user_id keeps the users of before open_id.
    alipay_user_key: Literal["user_id", "open_id"] = "user_id"
    # Alipay's web authorization page for the H5 page's login (gateway.h5);
    # unset: publicAppAuthorize.htm at alipay_url's origin, which is where the
    # simulator serves it. Production: https://openauth.alipay.com/oauth2/publicAppAuthorize.htm
    alipay_authorize_url: str | None = None
    # The origin the H5 page is served from as browsers see it
    # (https://yztc.example.cn), for the redirect_uri and the CSRF origin
    # check; unset: the request's own scheme and Host.
    h5_public_origin: str | None = None
    # Secure cookies: unset means only when the request came over HTTPS; set
    # true behind a proxy that ends TLS (the gateway then sees plain HTTP).
    h5_secure_cookies: bool | None = None
    session_ttl_seconds: PositiveInt = 7200
    max_body_bytes: PositiveInt = 16384

    # Client addresses: the peer, or X-Forwarded-For when the peer is one of
    # these proxies (CIDRs, env as a JSON list: ["10.0.0.0/8"]).
    trusted_proxies: tuple[str, ...] = ()
    # Rate limits (COUNT/SECONDS, fixed windows, shared by all replicas in MongoDB).
    # Per client IP on every /api/v1 endpoint; generous because mobile
    # carriers put many people behind one address (CGNAT).
    limit_ip_requests: Limit = RateLimit(count=600, seconds=60)
    # Per Alipay user on every endpoint that knows the user.
    limit_user_requests: Limit = RateLimit(count=120, seconds=60)
    # Logins per Alipay user: new sessions must not reset the per-session limits.
    limit_user_sessions: Limit = RateLimit(count=20, seconds=3600)
    # Verification codes per session and per client IP (the aggregator
    # limits codes per phone).
    limit_session_codes: Limit = RateLimit(count=5, seconds=3600)
    limit_ip_codes: Limit = RateLimit(count=60, seconds=3600)
    # A client over its address's limit waits this long for its 429: a
    # flooding client's connections are held instead of served as fast as
    # it can send (its refusals cost no database work, but still CPU).
    limit_refusal_delay_seconds: float = Field(0.5, ge=0, le=10)

    # How long the gateway keeps the enterprise directory, and lets clients do.
    enterprises_cache_seconds: PositiveInt = 300

    # Shared by every service, hence no prefix; the field name also works
    # as a keyword so tests can build settings directly.
    mongodb_uri: str = Field(
        "mongodb://127.0.0.1:27018/yztc",
        validation_alias=AliasChoices("MONGODB_URI", "mongodb_uri"),
    )
    # Client identity on the channel API (env YZTC_TLS_*); empty = plaintext.
    tls: GrpcTlsSettings = Field(default_factory=GrpcTlsSettings)

    @field_validator("alipay_aes_key")
    @classmethod
    def _aes_key(cls, value: SecretStr) -> SecretStr:
        try:
            key = base64.b64decode(value.get_secret_value(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be base64") from None
        if len(key) not in (16, 24, 32):
            raise ValueError("must be a 128, 192 or 256-bit AES key")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(ipaddress.ip_network(v.strip(), strict=False)) for v in value)

    @property
    def authorize_url(self) -> str:
        """Where the H5 page's login sends the browser (Alipay's publicAppAuthorize.htm)."""
        if self.alipay_authorize_url:
            return self.alipay_authorize_url
        scheme, _, rest = self.alipay_url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}/oauth2/publicAppAuthorize.htm"

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)

    @property
    def aes_key(self) -> bytes:
        return base64.b64decode(self.alipay_aes_key.get_secret_value())
