"""The gateway's settings (env prefix YZTC_GATEWAY_), validated at start."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from pathlib import Path
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

from yztc.keyed_hashes import KeyedHasher
from yztc.settings import CommonSettings, GrpcTlsSettings
from yztc.tls import is_loopback

# The Alipay sandbox/demo app id the simulator and tests use (L7).
DEMO_APP_IDS = frozenset({"2021000000000001"})
# The file names devstack (make run) and the dev overlay give the Alipay
# simulator's and the development app's keys (devstack/secrets.py rsa_pair).
_DEVELOPMENT_KEY_NAMES = re.compile(r"alipay-(sim|app)-(public|private)\.pem")


def is_development_key(path: Path) -> bool:
    """Whether `path` is one of the development Alipay keys: a file devstack
    made (named alipay-sim-*/alipay-app-*, or under a var/keys folder), or a
    file with the same content as one in this checkout's var/keys."""
    resolved = path.resolve()
    if _DEVELOPMENT_KEY_NAMES.fullmatch(resolved.name) or ("var", "keys") in zip(
        resolved.parts, resolved.parts[1:], strict=False
    ):
        return True
    keys = Path(__file__).resolve().parent.parent / "var" / "keys"
    try:
        content = resolved.read_bytes().strip()
        return any(content == known.read_bytes().strip() for known in keys.glob("*.pem"))
    except OSError:
        return False


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
    # Serve HTTPS on `listen` with the internal identity below (its
    # certificate names DNS "gateway", serverAuth), so the phone numbers, ID
    # digits and codes the ingress controller passes on never cross the pod
    # network in clear; the controller verifies it by the internal CA
    # (deploy/k8s/base/ingress.yaml). Production refuses to serve in clear
    # off loopback.
    serve_tls: bool = False
    # The aggregator's INTERNAL port (YZTC_AGGREGATOR_INTERNAL_LISTEN), not the public channel port.
    aggregator_target: str = "127.0.0.1:50053"
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
    # A session unused this long has ended (L8), whatever its ttl says.
    session_idle_seconds: PositiveInt = 1800
    # Live sessions a user may hold (L8): a new login ends the oldest beyond it.
    max_sessions_per_user: PositiveInt = 5
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
    # Logins (POST /api/v1/sessions) per client address, claimed before the
    # Alipay call each one costs (L2): per IPv4 address or IPv6 /64, and per
    # IPv6 /56 and /48, so one subscriber's prefix holds few buckets.
    limit_ip_logins: Limit = RateLimit(count=30, seconds=600)
    limit_ip56_logins: Limit = RateLimit(count=60, seconds=600)
    limit_ip48_logins: Limit = RateLimit(count=120, seconds=600)
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
    # Keys of the keyed hashes stored in place of client addresses, user ids
    # and session ids (yztc.keyed_hashes; L6): {key id: base64 of >= 32
    # bytes}, env as JSON; `hash_key_id` is the one written with, the others
    # are looked up too (a rotation). Empty: a fixed development key, which
    # production refuses.
    hash_keys: dict[str, SecretStr] = Field(default_factory=dict)
    hash_key_id: str = ""

    # Internal identity toward the aggregator (env YZTC_TLS_*:
    # spiffe://yztc/service/gateway from the internal CA); empty only
    # with YZTC_DEVELOPMENT=1 (yztc/tls.py).
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

    def hasher(self) -> KeyedHasher:
        """The keyed hasher of `hash_keys` (yztc.keyed_hashes); the
        development one when none is configured."""
        if not self.hash_keys:
            return KeyedHasher.development("gateway")
        return KeyedHasher.from_secrets(self.hash_keys, self.hash_key_id or next(iter(self.hash_keys)))

    def production_refusals(self) -> list[str]:
        """What production (YZTC_DEVELOPMENT unset) must not run with (L7,
        L6): an http:// Alipay URL, the demo app id, the Alipay simulator's
        key, no hash key, no H5 authorization page, plain HTTP served off
        loopback. One line each; empty when all is well."""
        refusals = []
        for name in ("alipay_url", "alipay_authorize_url"):
            url = getattr(self, name)
            if url is not None and not url.lower().startswith("https://"):
                refusals.append(f"YZTC_GATEWAY_{name.upper()} must be https:// (not {url.split(':', 1)[0]}://)")
        if self.alipay_app_id in DEMO_APP_IDS:
            refusals.append("YZTC_GATEWAY_ALIPAY_APP_ID is the development demo app id")
        for name in ("alipay_public_key_file", "alipay_app_private_key_file"):
            if is_development_key(getattr(self, name)):
                refusals.append(
                    f"YZTC_GATEWAY_{name.upper()} is a development key (the Alipay simulator's or var/keys)"
                )
        if not self.hash_keys:
            refusals.append("YZTC_GATEWAY_HASH_KEYS is not set")
        elif self.hash_key_id not in self.hash_keys:
            refusals.append("YZTC_GATEWAY_HASH_KEY_ID names none of YZTC_GATEWAY_HASH_KEYS")
        if self.alipay_authorize_url is None:
            refusals.append(
                "YZTC_GATEWAY_ALIPAY_AUTHORIZE_URL is not set: the H5 page's login would go to a page "
                "derived from YZTC_GATEWAY_ALIPAY_URL (Alipay's is https://openauth.alipay.com/oauth2/publicAppAuthorize.htm)"
            )
        if not self.serve_tls and not is_loopback(self.listen):
            refusals.append(
                "YZTC_GATEWAY_SERVE_TLS is not set: citizens' numbers and codes would reach "
                f"{self.listen} in clear (set it, with YZTC_TLS_CERT and YZTC_TLS_KEY)"
            )
        return refusals

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
