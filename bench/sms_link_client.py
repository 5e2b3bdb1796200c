"""The SMS ceiling: the notifier's own link to the SMS centre, alone, in a
process of its own (`python -m bench.sms_link_client`, one job as JSON on
stdin, its result as JSON on stdout).

It reads the notifier's settings from its environment (the bench starts it
with the stack's sms_notifier environment, so the same protocol, account,
window and addressing), opens the same link class the notifier uses
(SmscLink for `smpp34`, CmppLink for `cmpp30`) to the simulator's face, and
submits `texts` (UCS-2 parts as the notifier splits them) to `dests`, every
message at once and the link's window deciding how many are unanswered;
then waits for the centre's receipts (one a part by default). No database,
no gRPC, no sealing, no pacing: what is left is the protocol itself.

Job: {"texts": [str], "dests": [str], "receipt_timeout": s}.
Result: {"protocol", "messages", "parts", "accepted_parts", "receipts",
"seconds" (first submit to last answer), "seconds_with_receipts",
"cpu_seconds" (this process, over submits and receipts)}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from sms_notifier.cmpp_link import CmppSettings
from sms_notifier.metrics import Metrics
from sms_notifier.receipts import Receipt
from sms_notifier.settings import NotifierSettings
from sms_notifier.smpp_status import Verdict
from sms_notifier.smsc_links import link_from_settings
from sms_notifier.smsc_session import SmscSession
from sms_notifier.ucs2_parts import split


def _link(settings: NotifierSettings) -> SmscSession:
    """The link exactly as sms_notifier/__main__.py builds it from the same settings."""
    cmpp = CmppSettings() if settings.smsc_protocol == "cmpp30" else None
    return link_from_settings(settings, cmpp, Metrics())


async def run(job: dict) -> dict:
    settings = NotifierSettings()
    link = _link(settings)
    receipts = 0
    last_receipt = asyncio.Event()
    parts_total = 0

    async def on_receipt(_receipt: Receipt) -> None:
        nonlocal receipts
        receipts += 1
        if receipts >= parts_total:
            last_receipt.set()

    link.on_receipt = on_receipt
    await link.start()
    try:
        await asyncio.wait_for(link.bound.wait(), timeout=15)
        messages = [
            (dest, split(text, ref=n % 256))
            for n, (dest, text) in enumerate(zip(job["dests"], job["texts"], strict=True))
        ]
        parts_total = sum(len(parts) for _, parts in messages)
        cpu_start, start = time.process_time(), time.monotonic()
        answers = await asyncio.gather(*(link.submit(dest, part) for dest, parts in messages for part in parts))
        submitted = time.monotonic()
        try:
            await asyncio.wait_for(last_receipt.wait(), timeout=job.get("receipt_timeout", 30))
        except TimeoutError:
            pass
        ended, cpu = time.monotonic(), time.process_time() - cpu_start
    finally:
        await link.close()
    return {
        "protocol": settings.smsc_protocol,
        "messages": len(messages),
        "parts": parts_total,
        "accepted_parts": sum(a.verdict is Verdict.ACCEPTED for a in answers),
        "receipts": receipts,
        "seconds": round(submitted - start, 4),
        "seconds_with_receipts": round(ended - start, 4),
        "cpu_seconds": round(cpu, 5),
    }


def main() -> None:
    json.dump(asyncio.run(run(json.load(sys.stdin))), sys.stdout)


if __name__ == "__main__":
    main()
