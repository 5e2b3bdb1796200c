"""The gateway's HTTP/1.1 limits, and the CONTRACT's answer when aiohttp's
request parser refuses a request before the app ever sees it.

Why a protocol subclass: aiohttp answers a request its parser refuses (a
line or header over the limits, too many headers, a malformed request line)
in `RequestHandler.handle_error`, outside the app: no middleware and no
on_response_prepare signal runs, the answer is `text/plain` quoting the
first 100 bytes of the offending input (a token, `?phone=…`), and the
exception, input included, goes to the `aiohttp.server` log (aiohttp #833,
#3862; #3287 asks for a supported hook and is still open in 3.14). So the
gateway's connections are served by `ContractRequestHandler`, whose
`handle_error` answers in the CONTRACT's JSON shape with X-Request-Id and
the security headers, writes one access-log line without the input, and
whose `log_exception` keeps only the exception's type and place. aiohttp's
`Server` builds `RequestHandler` by name, hence `ContractServer`, and
`GatewayRunner` (an `AppRunner`) serves the app with it: `python -m
gateway` and the tests run the gateway through it.

The limits are set on the Application (`handler_args`, aiohttp's
documented way), so they hold under any runner.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

from gateway.json_answers import dumps
from gateway.middlewares import SECURITY_HEADERS, access_log, where_raised
from yztc.errors import CATALOGUE

log = logging.getLogger("gateway")

# The request line: the method, our longest path (~90 bytes) and a query
# string we never read. Over it: 414.
MAX_LINE_BYTES = 4096
# One header field, name and value: as nginx's default large header buffer
# (8 KiB) and aiohttp's default. Our longest header is a 50-byte
# Authorization; the mini-program sends no cookies. Over it: 431.
MAX_FIELD_BYTES = 8190
# A mini-program request carries about 15 headers, a few more through
# proxies and tracing. Over it: 431.
MAX_HEADERS = 64
# MAX_LINE_BYTES must differ from MAX_FIELD_BYTES: LineTooLong says only
# which limit it met, and that tells a request line (414) from a header (431).
HANDLER_ARGS = {"max_line_size": MAX_LINE_BYTES, "max_field_size": MAX_FIELD_BYTES, "max_headers": MAX_HEADERS}

REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
_TOO_LARGE_MESSAGE = {
    414: "请求地址过长。",
    431: "请求头过大或过多。",
}
_MALFORMED_MESSAGE = "请求格式有误（不是有效的 HTTP 请求）。"


def _refusal(status: int, error: BaseException | None, max_line_size: int) -> tuple[int, str, str]:
    """(HTTP status, CONTRACT code, message) for an error aiohttp met
    outside the app; `status` is aiohttp's choice (400 for any parser error)."""
    if status == 400:
        if isinstance(error, LineTooLong):
            # args: (the input's first bytes, the limit met, the size)
            status = 414 if error.args[1] == max_line_size else 431
            return status, REQUEST_TOO_LARGE, _TOO_LARGE_MESSAGE[status]
        # The parsers' text for max_headers (C and Python alike): no subclass says it.
        if isinstance(error, BadHttpMessage) and error.message.startswith("Too many headers"):
            return 431, REQUEST_TOO_LARGE, _TOO_LARGE_MESSAGE[431]
        return 400, "INVALID_ARGUMENT", _MALFORMED_MESSAGE
    # 500 (the app raised past its middlewares) or 504: never a 500 to a client.
    return 503, "UNAVAILABLE", CATALOGUE["UNAVAILABLE"].message


class ContractRequestHandler(RequestHandler):
    """aiohttp's HTTP/1.1 protocol, answering its own refusals as the
    gateway answers everything else (see the module's docstring)."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The CONTRACT's error answer; the connection closes after it.
        `message` (aiohttp's text, quoting the input) is never used."""
        # As aiohttp: once part of an answer is out, nothing else can be sent.
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was already partly sent")
        status, code, text = _refusal(status, exc, self.max_line_size)
        request_id = uuid.uuid4().hex
        fields: dict[str, Any] = {
            "method": "-",
            "route": "(refused before routing)",
            "status": status,
            "request_id": request_id,
        }
        if exc is not None:
            fields["error"] = type(exc).__name__
        access_log.info("request", extra={"fields": fields})
        if status >= 500 and exc is not None:
            self.log_exception("unexpected error", exc_info=exc)
        response = web.Response(
            status=status,
            body=dumps({"error": {"code": code, "message": text}}).encode("utf-8"),
            content_type="application/json",
            charset="utf-8",
            headers={**SECURITY_HEADERS, "X-Request-Id": request_id},
        )
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's error log, without the exception's text (parser errors
        quote the input) or traceback: its type and where it was raised."""
        # Its messages may carry arguments or reprs of what the app returned:
        # one fixed text instead.
        exc_info = kw.get("exc_info")
        error = exc_info if isinstance(exc_info, BaseException) else None
        fields = {"error": type(error).__name__, "where": where_raised(error)} if error else {}
        log.error("http protocol error", extra={"fields": fields})


class ContractServer(web.Server):
    """aiohttp's protocol factory, making ContractRequestHandlers."""

    def __call__(self) -> RequestHandler:
        return ContractRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """An AppRunner whose connections are ContractRequestHandlers. aiohttp's
    own access log is off: the request_context middleware writes one
    without raw paths or query strings."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("access_log", None)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        # AppRunner's own (app start-up, its request factory, handler_args),
        # rebuilt as a ContractServer: aiohttp has no parameter for the class.
        made = await super()._make_server()
        return ContractServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )
