"""Settings of the SMS centre's SMPP face (YZTC_SIM_SMPP_*): where it
listens and the one ESME account it accepts binds from."""

from __future__ import annotations

from pydantic import Field, field_validator

from simulators.settings import check_host_port
from yztc.settings import CommonSettings


class SmsCentreSettings(CommonSettings):
    # Env prefix YZTC_ (from CommonSettings): YZTC_SIM_SMPP_LISTEN and so on.
    sim_smpp_listen: str = "127.0.0.1:2775"
    sim_smpp_system_id: str = Field("yztc", min_length=1, max_length=15)
    sim_smpp_password: str = Field("yztc-dev", min_length=1, max_length=8)

    @field_validator("sim_smpp_listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        return check_host_port(value)
