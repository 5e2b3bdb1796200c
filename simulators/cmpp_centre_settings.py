"""Settings of the SMS centre's CMPP 3.0 face (YZTC_SIM_CMPP_*): where it
listens and the one SP account (SP_Id and shared secret) it accepts."""

from __future__ import annotations

from pydantic import Field, field_validator

from simulators.settings import check_host_port
from yztc.settings import CommonSettings


class CmppCentreSettings(CommonSettings):
    # Env prefix YZTC_ (from CommonSettings): YZTC_SIM_CMPP_LISTEN and so on.
    sim_cmpp_listen: str = "127.0.0.1:7890"  # CMPP 3.0 §7.3: SP-ISMG long connections
    sim_cmpp_source_addr: str = Field("901234", min_length=1, max_length=6)  # the SP_Id accepted
    sim_cmpp_shared_secret: str = Field("yztc-dev", min_length=1)

    @field_validator("sim_cmpp_listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        return check_host_port(value)
