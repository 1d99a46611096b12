"""A model behind an OpenAI-compatible server (llama-server, vLLM, Ollama), streamed over
server-sent events with the standard library only."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from legalrag.answer.llm.base import TURN_STARTED, Generation, Message, TurnStarted, Usage
from legalrag.errors import ModelError

_CJK_RE = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")


def estimate_tokens(text: str) -> int:
    """A conservative token estimate without a tokenizer: one token per CJK character and
    one per three other characters. Real tokenizers (Qwen: ~0.7 tokens per Chinese
    character) spend fewer, so a prompt fitted with this estimate always fits."""
    cjk = len(_CJK_RE.findall(text))
    return cjk + -(-(len(text) - cjk) // 3)


class HttpChatModel:
    """A model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint (llama-server,
    vLLM, Ollama), streamed over server-sent events with the standard library only.

    The server schedules its own requests, so no local queue; the token count is an
    estimate because the OpenAI API has no tokenizer endpoint.
    """

    def __init__(self, base_url: str, *, model: str = "local", n_ctx: int = 4096,
                 timeout: float = 300.0, send_grammar: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.send_grammar = send_grammar  # the server reads a GBNF `grammar` field
        self.name = f"{model}@{self.base_url}"
        self.n_ctx = n_ctx
        self.timeout = timeout
        self._active = 0
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def waiting(self) -> int:
        with self._lock:
            return self._active

    def stream(self, messages: Sequence[Message], *, max_tokens: int,
               temperature: float = 0.0, stop: Sequence[str] = (),
               seed: int | None = None, grammar: str | None = None,
               cancel: threading.Event | None = None) -> Generation:
        body: dict[str, Any] = {
            "model": self.model, "messages": [m.as_dict() for m in messages],
            "max_tokens": max_tokens, "temperature": temperature, "stream": True,
            "stream_options": {"include_usage": True}}
        if stop:
            body["stop"] = list(stop)
        if seed is not None:
            body["seed"] = seed
        if grammar and self.send_grammar:
            body["grammar"] = grammar  # llama-server's field; others would reject it
        prompt_estimate = sum(estimate_tokens(m.content) for m in messages)

        def run(gen: Generation) -> Iterator[str | TurnStarted]:
            # The server schedules its requests itself and does not say when it starts
            # on this one: the turn counts as started when the request is sent.
            yield TURN_STARTED
            start = time.perf_counter()
            first = 0.0
            pieces = 0
            finish = "cancelled"
            usage: dict[str, Any] = {}
            with self._lock:
                self._active += 1
            try:
                with self._post("/chat/completions", body) as resp:
                    for event in _sse_events(_lines(resp)):
                        if gen.cancelled:  # closing the response ends it on the server
                            finish = "cancelled"
                            break
                        if event.get("usage"):
                            usage = event["usage"]
                        for choice in event.get("choices") or ():
                            finish = choice.get("finish_reason") or finish
                            piece = (choice.get("delta") or {}).get("content")
                            if piece:
                                pieces += 1
                                first = first or time.perf_counter()
                                yield piece
            finally:
                with self._lock:
                    self._active -= 1
                end = time.perf_counter()
                first = first or end
                gen.usage = Usage(
                    prompt_tokens=int(usage.get("prompt_tokens", prompt_estimate)),
                    completion_tokens=int(usage.get("completion_tokens", pieces)),
                    cached_tokens=0, queue_ms=0.0,
                    first_token_ms=(first - start) * 1000, total_ms=(end - start) * 1000,
                    prefill_tokens=int(usage.get("prompt_tokens", prompt_estimate)),
                    prefill_ms=(first - start) * 1000,
                    decode_tokens=max(int(usage.get("completion_tokens", pieces)) - 1, 0),
                    decode_ms=(end - first) * 1000, finish_reason=finish)

        return Generation(run, cancel)

    @contextlib.contextmanager
    def _post(self, path: str, body: dict[str, Any]) -> Iterator[Any]:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(
            self.base_url + path, data=json.dumps(body).encode("utf-8"), method="POST",
            headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout)  # noqa: S310 - local URL
        except urllib.error.HTTPError as e:
            detail = e.read(500).decode("utf-8", "replace")
            raise ModelError(f"model server {self.base_url} answered {e.code}: {detail}",
                             fix="check llm_http_url and llm_http_model") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ModelError(f"model server {self.base_url} is unreachable: {reason}",
                             fix="start the server or fix llm_http_url") from None
        with resp:
            yield resp


def _lines(resp: Any) -> Iterator[bytes]:
    """The response's lines; a connection that breaks mid-answer is a ModelError."""
    import http.client

    try:
        yield from resp
    except (OSError, http.client.HTTPException) as e:
        raise ModelError(f"the model server closed the connection mid-answer: {e}",
                         fix="check the server's log") from None


def _sse_events(lines: Any) -> Iterator[dict[str, Any]]:
    """JSON payloads of a server-sent event stream, up to ``data: [DONE]``."""
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            payload = "\n".join(data)
            data = []
            if payload == "[DONE]":
                return
            try:
                yield json.loads(payload)
            except ValueError:
                raise ModelError(f"model server sent malformed data: {payload[:200]!r}") from None
