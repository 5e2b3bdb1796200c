"""The notifier's settings (env prefix YZTC_NOTIFIER_), validated at start:
a missing password or data key stops start-up."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from sms_notifier.sealed_fields import decode_key
from yztc.settings import CommonSettings


class NotifierSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="YZTC_NOTIFIER_", extra="ignore", frozen=True)

    listen: str = "127.0.0.1:50052"
    # Under mutual TLS, the client certificate names (CN) allowed to call.
    allowed_callers: frozenset[str] = frozenset({"aggregator"})
    mongodb_uri: str = Field("mongodb://127.0.0.1:27018/yztc", validation_alias="MONGODB_URI")

    # The SMS centre's protocol: SMPP 3.4 (the settings below) or CMPP 3.0
    # (YZTC_NOTIFIER_CMPP_*: sms_notifier/cmpp_link.py, CmppSettings).
    smsc_protocol: Literal["smpp34", "cmpp30"] = "smpp34"

    # The SMS centre, SMPP 3.4, bound as a transceiver.
    smsc_host: str = "127.0.0.1"
    smsc_port: int = Field(2775, ge=1, le=65535)
    system_id: str = Field("yztc", min_length=1, max_length=15)
    # SMPP allows 8 characters; required with smpp34 only (checked below, so
    # it is still named when missing).
    password: SecretStr = Field(SecretStr(""), validate_default=True)
    # The unified port; a short code, so TON 3 (network specific), NPI 0 (unknown).
    source_addr: str = "10699000"
    source_addr_ton: int = Field(3, ge=0, le=6)
    source_addr_npi: int = Field(0, ge=0, le=18)
    # Mainland numbers as given (11 digits, no country code): TON 0 unknown, NPI 1 ISDN (E.164).
    dest_addr_ton: int = Field(0, ge=0, le=6)
    dest_addr_npi: int = Field(1, ge=0, le=18)
    window: int = Field(10, ge=1, le=1000)  # submit_sm in flight at once, per replica
    max_per_second: float = Field(50.0, gt=0)  # per replica (the SMS centre limits per bind)
    throttle_pause_seconds: float = Field(1.0, ge=0)
    reconnect_min_seconds: float = Field(0.2, gt=0)
    reconnect_max_seconds: float = Field(10.0, gt=0)
    bind_timeout_seconds: float = Field(5.0, gt=0)
    max_parts: int = Field(10, ge=1, le=255)

    # SMPP over TLS (M8; the prod overlay sets it): the centre's CA (default:
    # the system's roots), our client certificate if it asks for one, and
    # the name on its certificate (default: smsc_host).
    smsc_tls: bool = False
    smsc_tls_ca_file: str | None = None
    smsc_tls_cert_file: str | None = None
    smsc_tls_key_file: str | None = None
    smsc_tls_server_name: str | None = None
    # The link runs on a private line (the operator's leased line, or IPsec),
    # which is then its only protection. Outside development a link in clear
    # (SMPP without smsc_tls; CMPP 3.0 always, it has no TLS) needs this said,
    # or the notifier refuses to start (M8, fail closed like M3).
    smsc_private_line: bool = False

    # Receipts (sms_notifier/receipts.py, settling.py). How this centre writes
    # its ids in receipts: auto, hex, decimal, as_is (receipts.IdForm).
    receipt_id_form: Literal["auto", "hex", "decimal", "as_is"] = "auto"
    # A SENT message whose parts did not all get a receipt this long after
    # SENT is decided from what arrived (after query_sm, over SMPP).
    receipt_window_seconds: float = Field(600.0, gt=0)
    # The centre's clock, which receipt dates are written in (China: +480 min),
    # and the allowance when they are compared with our submission times.
    smsc_utc_offset_minutes: int = Field(480, ge=-720, le=840)
    receipt_date_slack_seconds: float = Field(120.0, ge=0)
    # Bounds on what a centre can make us keep: receipts waiting to be
    # recorded (in memory), receipts kept aside per replica and hour (in
    # the database), and how long those are kept.
    receipt_queue_capacity: int = Field(10_000, ge=1)
    kept_receipts_per_hour: int = Field(50_000, ge=1)
    kept_receipt_seconds: float = Field(6 * 3600.0, gt=0)

    # Send submits at once: no new submit_sm after this many seconds (T_max);
    # what is not accepted by then goes to the fallback queue. A caller's next
    # attempt must start later than this (plus a margin) after the previous.
    push_seconds: float = Field(2.0, gt=0, le=10)
    # How long Send waits for its SENT record before answering from memory
    # (the record is retried in the background: the database is away).
    record_wait_seconds: float = Field(1.0, gt=0)
    # Final states from receipts are written in one insert per this interval.
    finals_batch_seconds: float = Field(0.05, ge=0, le=5)

    # The fallback queue: leases shared by replicas, retries with backoff,
    # giving up. It is scanned every poll_seconds (a safety net: Send wakes
    # the worker at once when it queues a message).
    lease_seconds: float = Field(30.0, gt=0)
    poll_seconds: float = Field(1.0, gt=0)
    retry_min_seconds: float = Field(0.5, gt=0)
    retry_max_seconds: float = Field(300.0, gt=0)
    # Transient failures are retried for this long, then the message FAILS
    # (the product promises the result SMS within 48 hours).
    give_up_after_seconds: float = Field(172800.0, gt=0)
    # Final messages are kept this long for GetStatus, then deleted.
    retention_days: float = Field(30.0, gt=0)

    # AES-GCM key (base64, 256-bit) for the destination and text while queued,
    # its id, and earlier keys still needed to open queued messages ({"id": "base64"}).
    data_key: SecretStr
    data_key_id: str = Field("k1", min_length=1)
    previous_data_keys: SecretStr = SecretStr("{}")

    @field_validator("password")
    @classmethod
    def _password_fits(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        smpp = info.data.get("smsc_protocol", "smpp34") == "smpp34"
        if not (1 if smpp else 0) <= len(value.get_secret_value()) <= 8:
            raise ValueError("SMPP passwords are 1 to 8 characters")
        return value

    @field_validator("data_key")
    @classmethod
    def _key_is_256_bit(cls, value: SecretStr) -> SecretStr:
        decode_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _consistent(self) -> NotifierSettings:
        if self.reconnect_min_seconds > self.reconnect_max_seconds:
            raise ValueError("reconnect_min_seconds is above reconnect_max_seconds")
        if self.retry_min_seconds > self.retry_max_seconds:
            raise ValueError("retry_min_seconds is above retry_max_seconds")
        if bool(self.smsc_tls_cert_file) != bool(self.smsc_tls_key_file):
            raise ValueError("smsc_tls_cert_file and smsc_tls_key_file go together")
        self.data_keys()
        return self

    def production_refusals(self) -> list[str]:
        """What production (YZTC_DEVELOPMENT unset) must not run with: the
        SMS-centre link in clear on anything but a declared private line.
        One line each; empty when all is well."""
        in_clear = self.smsc_protocol == "cmpp30" or not self.smsc_tls
        if not in_clear or self.smsc_private_line:
            return []
        if self.smsc_protocol == "cmpp30":
            return [
                "CMPP 3.0 to the SMS centre runs in clear (it has no TLS): "
                "set YZTC_NOTIFIER_SMSC_PRIVATE_LINE=true once the link runs on a private line"
            ]
        return [
            "SMPP to the SMS centre in clear: set YZTC_NOTIFIER_SMSC_TLS=true, "
            "or YZTC_NOTIFIER_SMSC_PRIVATE_LINE=true if the link runs on a private line"
        ]

    def data_keys(self) -> dict[str, bytes]:
        try:
            previous = json.loads(self.previous_data_keys.get_secret_value())
        except json.JSONDecodeError:
            raise ValueError("previous_data_keys is not JSON") from None
        if not isinstance(previous, dict):
            raise ValueError('previous_data_keys must be {"key id": "base64 key"}')
        keys = {kid: decode_key(value) for kid, value in previous.items()}
        keys[self.data_key_id] = decode_key(self.data_key.get_secret_value())
        return keys
