"""The link to the SMS centre. Walking-skeleton transport: HTTP submit to the
SMS-centre simulator; the SMS issue replaces it with SMPP 3.4."""
from __future__ import annotations

import aiohttp


class SmscError(Exception):
    pass


class SmscLink:
    def __init__(self, base_url: str, source_addr: str, timeout: float) -> None:
        self._url = base_url.rstrip("/") + "/submit"
        self._source = source_addr
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def submit(self, dest: str, text: str) -> tuple[str, int]:
        """(SMS centre's message id, segments)."""
        assert self._session is not None
        try:
            async with self._session.post(
                self._url, json={"source": self._source, "dest": dest, "text": text}
            ) as response:
                if response.status != 200:
                    raise SmscError(f"SMS centre answered {response.status}")
                body = await response.json()
                return str(body["message_id"]), int(body["segments"])
        except (aiohttp.ClientError, TimeoutError) as error:
            raise SmscError(f"SMS centre unreachable: {type(error).__name__}") from None
