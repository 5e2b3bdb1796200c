"""The aggregator's settings (env prefix YZTC_AGGREGATOR_), validated at start."""

from __future__ import annotations

import base64
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from yztc.keyed_hashes import KeyedHasher
from yztc.settings import CommonSettings

CONFIG = Path(__file__).resolve().parent.parent / "config"


class AggregatorSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="YZTC_AGGREGATOR_", extra="ignore", frozen=True)

    # The public channel API (mutual TLS trusting only the channels' CA,
    # channels_ca) and the internal port (mutual TLS trusting only the
    # internal CA, YZTC_TLS_CA: the gateway's channel API and the probes).
    listen: str = "127.0.0.1:50051"
    internal_listen: str = "127.0.0.1:50053"
    channels_ca: str = ""
    mongodb_uri: str = Field("mongodb://127.0.0.1:27018/yztc", validation_alias="MONGODB_URI")
    enterprises_file: Path = CONFIG / "enterprises.json"
    number_segments_file: Path = CONFIG / "number_segments.json"
    # company id -> connector target; operator id -> connector target.
    companies: dict[str, str]
    operators: dict[str, str]
    notifier_target: str = "127.0.0.1:50052"
    # Channels allowed on the channel API (by SAN URI spiffe://yztc/channel/<id>),
    # their quotas, the internal callers admitted as a channel and the revoked
    # certificate serials; re-read when it changes (aggregator/channel_quotas.py).
    # Production: config/channels.prod.json (the development one is refused).
    channels_file: Path = CONFIG / "channels.json"
    # Phone keys: {key id: base64 256-bit key}; new data uses phone_key_id.
    phone_keys: dict[str, SecretStr]
    phone_key_id: str = "k1"
    # Keys of the keyed hashes stored in place of phone numbers, codes and
    # requester ids (yztc.keyed_hashes; review L6): {key id: base64 of >= 32
    # random bytes}, env as JSON; new hashes are made under hash_key_id, and
    # a hash names its key, so the others are still read (a rotation:
    # docs/runbook.md, "Keyed-hash keys").
    hash_keys: dict[str, SecretStr]
    hash_key_id: str
    # Per-company policy lives in the enterprises file; this is for the
    # operator check and the notifier.
    call_timeout_seconds: float = 5.0
    # The 48-hour promise; the result SMS goes out finalize_margin before it
    # at the latest, naming the companies that have not answered.
    deliver_within_seconds: float = 48 * 3600
    finalize_margin_seconds: float = 3600
    late_answers_seconds: float = 24 * 3600
    # Personal data of a closed query is deleted this long after completion.
    retention_days: float = 30
    purge_interval_seconds: float = 600
    # Work sharing between replicas: a replica's open queries are taken
    # over by the others once its heartbeat is this old (yztc/replicas.py).
    lease_seconds: float = 30.0
    max_in_flight: int = 200
    # The longest the dispatcher sleeps when nothing is due (new work and
    # finished rounds wake it; no database read is involved).
    dispatch_poll_seconds: float = 1.0
    # Seconds a round may keep polling or retrying a company inline.
    round_budget_seconds: float = 10.0
    # How long a round waits for every company before it records the
    # answers so far (and GetQuery shows them), while a slow one goes on.
    flush_after_seconds: float = 0.3

    @field_validator("phone_keys")
    @classmethod
    def _keys_decode(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for kid, key in value.items():
            if len(base64.b64decode(key.get_secret_value())) != 32:
                raise ValueError(f"phone key {kid} is not 256-bit base64")
        return value

    def decoded_phone_keys(self) -> dict[str, bytes]:
        return {kid: base64.b64decode(k.get_secret_value()) for kid, k in self.phone_keys.items()}

    @model_validator(mode="after")
    def _hash_keys_usable(self) -> AggregatorSettings:
        self.hasher()  # ValueError naming the key id at fault
        return self

    def hasher(self) -> KeyedHasher:
        """The keyed hasher of hash_keys, writing under hash_key_id."""
        return KeyedHasher.from_secrets(self.hash_keys, self.hash_key_id)
