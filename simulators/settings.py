"""Settings of `python -m simulators`, from YZTC_* environment variables,
validated at start."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from yztc.partner_signing import PartnerKeyRing
from yztc.settings import CommonSettings


def check_host_port(value: str) -> str:
    """A listen address as host:port, or a ValueError saying it is not."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port")
    return value


def split_listen(value: str) -> tuple[str, int]:
    """("127.0.0.1", 9101) from "127.0.0.1:9101" (or "[::1]:9101")."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class SimulatorSettings(CommonSettings):
    # The env prefix is YZTC_ (from CommonSettings): `scenario` is YZTC_SCENARIO,
    # shared by every simulator, and the rest are YZTC_SIM_*.
    scenario: str = ""
    # The simulators' own level, over YZTC_LOG_LEVEL: every answer is logged
    # at DEBUG (ten lines a query), which the bench's round-trip count reads.
    sim_log_level: str | None = None
    sim_companies_listen: str = "127.0.0.1:9101"
    sim_operators_listen: str = "127.0.0.1:9102"
    sim_alipay_listen: str = "127.0.0.1:9103"
    sim_smsc_listen: str = "127.0.0.1:9104"
    sim_alipay_app_id: str = "2021000000000001"
    sim_alipay_private_key_file: Path  # the simulator's own key, PKCS#1 PEM
    sim_alipay_app_public_key_file: Path  # our app's key, SPKI PEM
    # The connectors' public keys each company and operator accepts
    # (docs/partner-api.md): JSON {"<enterprise>": {"<key id>": "<SPKI PEM>"}}.
    # Unset: every company and operator call is refused 401.
    sim_partner_keys_file: Path | None = None

    @field_validator("sim_companies_listen", "sim_operators_listen", "sim_alipay_listen", "sim_smsc_listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        return check_host_port(value)

    @field_validator("sim_alipay_private_key_file", "sim_alipay_app_public_key_file", "sim_partner_keys_file")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file")
        return value

    def partner_keys(self) -> PartnerKeyRing | None:
        """The key ring from `sim_partner_keys_file`; ValueError naming the bad entry."""
        return PartnerKeyRing.from_file(self.sim_partner_keys_file) if self.sim_partner_keys_file else None
