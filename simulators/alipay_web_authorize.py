"""Alipay's web authorization page for H5 apps (publicAppAuthorize.htm), as
the simulator of Alipay serves it beside /gateway.do.

    GET  /oauth2/publicAppAuthorize.htm?app_id&scope&redirect_uri&state
         a page in Chinese listing the scenario's demo users (the user ids
         of `alipay.auth_codes`), one button each
    POST /oauth2/publicAppAuthorize.htm  (form: the same four, and user_id)
         mints a single-use auth code for that user (the one
         alipay.system.oauth.token then redeems) and answers 302 to
         `redirect_uri` with auth_code, app_id, source=alipay_wallet, scope
         and state, as Alipay does

Refused with 400 and a short page: another app_id, a scope other than
auth_base/auth_user, a redirect_uri that is not an absolute http(s) URL, a
user that is not a demo user. Nothing of the request is logged but the outcome.
"""

from __future__ import annotations

import html
import logging
from urllib.parse import urlencode, urlsplit

from aiohttp import web

log = logging.getLogger("simulators.alipay")

PATH = "/oauth2/publicAppAuthorize.htm"
SCOPES = frozenset({"auth_base", "auth_user"})


def demo_users(auth_codes: dict[str, str]) -> list[str]:
    """The scenario's demo users: the distinct user ids of its auth codes, sorted."""
    return sorted(set(auth_codes.values()))


def _checked(params, app_id: str) -> tuple[dict[str, str], str | None]:
    """(the four authorization parameters, None) or (…, why refused)."""
    fields = {name: params.get(name, "") for name in ("app_id", "scope", "redirect_uri", "state")}
    if not isinstance(fields["redirect_uri"], str):
        return fields, "redirect_uri 参数有误"
    target = urlsplit(fields["redirect_uri"])
    if fields["app_id"] != app_id:
        return fields, "无效的 app_id"
    if fields["scope"] not in SCOPES:
        return fields, "scope 须为 auth_base 或 auth_user"
    if target.scheme not in ("http", "https") or not target.netloc:
        return fields, "redirect_uri 须为完整的 http(s) 地址"
    return fields, None


def _page(title: str, body: str, status: int = 200, form_target: str = "") -> web.Response:
    # No script, no style: a plain form. form-action names where the
    # answer's redirect goes, since Chromium checks redirects of a form post.
    csp = f"default-src 'none'; form-action 'self' {form_target}".strip()
    text = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head><body><main><h1>{title}</h1>{body}</main></body></html>"
    )
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": csp, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def make_handlers(app_id_of, codes_of, users_of):
    """The GET and POST handlers; `app_id_of`, `codes_of`, `users_of` read
    the simulator's app id, its AuthCodes and demo users from the app."""

    async def show(request: web.Request) -> web.Response:
        fields, refused = _checked(request.query, app_id_of(request.app))
        if refused:
            log.info("web authorization refused", extra={"fields": {"outcome": "bad request"}})
            return _page("授权失败", f"<p>{html.escape(refused)}</p>", status=400)
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value, quote=True)}">'
            for name, value in fields.items()
        )
        buttons = "".join(
            f'<li><form method="post" action="{PATH}">{hidden}'
            f'<button type="submit" name="user_id" value="{user}">以演示用户 {user} 授权</button></form></li>'
            for user in users_of(request.app)
        )
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(fields["redirect_uri"]))
        return _page(
            "支付宝授权（模拟）",
            f"<p>该应用申请获取你的支付宝用户标识（auth_base）。请选择一个演示用户：</p><ul>{buttons}</ul>",
            form_target=origin,
        )

    async def grant(request: web.Request) -> web.Response:
        form = await request.post()
        fields, refused = _checked(form, app_id_of(request.app))
        user = form.get("user_id")
        if refused is None and user not in users_of(request.app):
            refused = "未知的演示用户"
        if refused:
            log.info("web authorization refused", extra={"fields": {"outcome": "bad request"}})
            return _page("授权失败", f"<p>{html.escape(refused)}</p>", status=400)
        auth_code = codes_of(request.app).mint(user)
        back = urlencode(
            {
                "auth_code": auth_code,
                "app_id": fields["app_id"],
                "source": "alipay_wallet",
                "scope": fields["scope"],
                "state": fields["state"],
            }
        )
        separator = "&" if urlsplit(fields["redirect_uri"]).query else "?"
        log.info("web authorization granted", extra={"fields": {"outcome": "granted"}})
        return web.Response(
            status=302,
            headers={"Location": f"{fields['redirect_uri']}{separator}{back}", "Referrer-Policy": "no-referrer"},
        )

    return show, grant
