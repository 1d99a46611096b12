"""What the server adds to its responses: headers that keep the page from talking to any
other host, and the page's language.

The README promises that nothing leaves the machine. Answers are escaped so that no text
becomes an image or link (views.md_esc); this is the second wall: a Content-Security-Policy
that lets the page load scripts, styles, images, frames and connections only from its own
origin, so even markup that slipped through could not fetch from elsewhere (issue 11).
Gradio's page needs inline scripts and styles (its config and our click handler are
inline) and eval (gradio 6's HTML component compiles its template with ``new Function``;
without 'unsafe-eval' no gr.HTML renders), so those are allowed: none of them lets the page
reach another origin, which is what this policy is for.

The page is Chinese whatever the browser's language (issue 15): Gradio translates its own
strings (copy buttons, upload areas) into the browser's language, ``navigator.language``,
read once when its scripts start; it has no setting for the locale, and its ``head``
scripts run only after that choice. So PageLanguage puts a small script at the top of the
page's ``<head>``, which runs before Gradio's, reporting zh-CN as the browser's language,
and sets ``<html lang="zh-CN">`` (screen readers, and the Chinese forms of the CJK glyphs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "media-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "frame-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'self'",
])
HEADERS = [
    (b"content-security-policy", CSP.encode("ascii")),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]

LANGUAGE = "zh-CN"
LANGUAGE_SCRIPT = (
    "<script>(function(){var l='" + LANGUAGE + "';"
    "try{Object.defineProperty(navigator,'language',{get:function(){return l}});"
    "Object.defineProperty(navigator,'languages',{get:function(){return [l]}});}catch(e){}"
    "document.documentElement.lang=l;})();</script>")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class SecurityHeaders:
    """ASGI middleware adding HEADERS to every HTTP response (streamed ones too).

    Passed to Gradio's FastAPI app at launch: ``app_kwargs={"middleware":
    [Middleware(SecurityHeaders)]}`` (headers cannot be added once the app has started).
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def in_chinese(page: bytes) -> bytes:
    """An HTML page with LANGUAGE as its language, and LANGUAGE_SCRIPT first in its head.

    >>> in_chinese(b'<html lang="en"><head><title>t</title></head></html>')[:40]
    b'<html lang="zh-CN"><head><script>(functi'
    """
    page = page.replace(b'lang="en"', f'lang="{LANGUAGE}"'.encode(), 1)
    return page.replace(b"<head>", b"<head>" + LANGUAGE_SCRIPT.encode(), 1)


class PageLanguage:
    """ASGI middleware passing every HTML page (the app's, the login form) through
    in_chinese. Gradio sends them whole with a content-length, which is recomputed."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body: list[bytes] = []

        async def send_translated(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                if not headers.get(b"content-type", b"").startswith(b"text/html"):
                    await send(message)
                    return
                start = message  # held until the whole page is here
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            page = in_chinese(b"".join(body))
            headers = [(k, v) for k, v in start.get("headers", [])
                       if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(page)).encode("ascii")))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, send_translated)


def middleware() -> list:
    """The middleware list for ``demo.launch(app_kwargs={"middleware": …})``."""
    from starlette.middleware import Middleware

    return [Middleware(SecurityHeaders), Middleware(PageLanguage)]
