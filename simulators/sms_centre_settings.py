"""Settings of the SMS centre's SMPP face (YZTC_SIM_SMPP_*): where it
listens, the one ESME account it accepts binds from, and SMPP over TLS
(YZTC_SIM_SMPP_TLS_CERT_FILE and _KEY_FILE: the face then speaks TLS only)."""

from __future__ import annotations

import ssl

from pydantic import Field, field_validator, model_validator

from simulators.settings import check_host_port
from yztc.settings import CommonSettings


class SmsCentreSettings(CommonSettings):
    # Env prefix YZTC_ (from CommonSettings): YZTC_SIM_SMPP_LISTEN and so on.
    sim_smpp_listen: str = "127.0.0.1:2775"
    sim_smpp_system_id: str = Field("yztc", min_length=1, max_length=15)
    sim_smpp_password: str = Field("yztc-dev", min_length=1, max_length=8)
    sim_smpp_tls_cert_file: str | None = None
    sim_smpp_tls_key_file: str | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> SmsCentreSettings:
        if bool(self.sim_smpp_tls_cert_file) != bool(self.sim_smpp_tls_key_file):
            raise ValueError("sim_smpp_tls_cert_file and sim_smpp_tls_key_file go together")
        return self

    def tls_context(self) -> ssl.SSLContext | None:
        """The SMPP face's server TLS context, or None (plain TCP)."""
        if not self.sim_smpp_tls_cert_file:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.sim_smpp_tls_cert_file, self.sim_smpp_tls_key_file)
        return context

    @field_validator("sim_smpp_listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        return check_host_port(value)
