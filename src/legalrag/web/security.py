"""Response headers that keep the page from talking to any other host.

The README promises that nothing leaves the machine. Answers are escaped so that no text
becomes an image or link (views.md_esc); this is the second wall: a Content-Security-Policy
that lets the page load scripts, styles, images, frames and connections only from its own
origin, so even markup that slipped through could not fetch from elsewhere (issue 11).
Gradio's page needs inline scripts and styles (its config and our click handler are
inline) and eval (gradio 6's HTML component compiles its template with ``new Function``;
without 'unsafe-eval' no gr.HTML renders), so those are allowed: none of them lets the page
reach another origin, which is what this policy is for.
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


def middleware() -> list:
    """The middleware list for ``demo.launch(app_kwargs={"middleware": …})``."""
    from starlette.middleware import Middleware

    return [Middleware(SecurityHeaders)]
