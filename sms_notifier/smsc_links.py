"""The link to the SMS centre, built from settings: SMPP 3.4 (smsc_link.py)
or CMPP 3.0 (cmpp_link.py) by `YZTC_NOTIFIER_SMSC_PROTOCOL`. One builder, so
the notifier (`__main__.py`) and the bench's link-alone ceiling
(bench/sms_link_client.py) measure the same link."""

from __future__ import annotations

import datetime as dt
import logging

from sms_notifier.cmpp_link import CmppLink, CmppSettings
from sms_notifier.metrics import Metrics
from sms_notifier.settings import NotifierSettings
from sms_notifier.smsc_link import Addressing, SmscLink, TlsOptions
from sms_notifier.smsc_session import SmscSession

log = logging.getLogger(__name__)


def link_from_settings(settings: NotifierSettings, cmpp_settings: CmppSettings | None, metrics: Metrics) -> SmscSession:
    """The CMPP link when `cmpp_settings` is given, else the SMPP one (over
    TLS when YZTC_NOTIFIER_SMSC_TLS is set). Whether a link in clear may
    start is NotifierSettings.production_refusals' to say (the review's M8)."""
    if cmpp_settings is not None:
        log.debug(
            "cmpp settings", extra={"fields": {"settings": cmpp_settings.model_dump_json(exclude={"shared_secret"})}}
        )
        return CmppLink(
            cmpp_settings,
            metrics=metrics,
            reconnect_min=settings.reconnect_min_seconds,
            reconnect_max=settings.reconnect_max_seconds,
            receipt_queue_capacity=settings.receipt_queue_capacity,
        )
    if not settings.smsc_tls and settings.smsc_private_line:
        log.info("SMPP to the SMS centre in clear, on the private line YZTC_NOTIFIER_SMSC_PRIVATE_LINE declares")
    return SmscLink(
        settings.smsc_host,
        settings.smsc_port,
        settings.system_id,
        settings.password.get_secret_value(),
        Addressing(
            settings.source_addr,
            settings.source_addr_ton,
            settings.source_addr_npi,
            settings.dest_addr_ton,
            settings.dest_addr_npi,
        ),
        window=settings.window,
        metrics=metrics,
        bind_timeout=settings.bind_timeout_seconds,
        reconnect_min=settings.reconnect_min_seconds,
        reconnect_max=settings.reconnect_max_seconds,
        tls=TlsOptions(
            settings.smsc_tls_ca_file,
            settings.smsc_tls_cert_file,
            settings.smsc_tls_key_file,
            settings.smsc_tls_server_name,
        )
        if settings.smsc_tls
        else None,
        id_form=settings.receipt_id_form,
        utc_offset=dt.timedelta(minutes=settings.smsc_utc_offset_minutes),
        receipt_queue_capacity=settings.receipt_queue_capacity,
    )
