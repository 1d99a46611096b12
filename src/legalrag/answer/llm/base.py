"""Chat models behind one small interface: in-process llama.cpp, or an OpenAI-compatible server.

The default model is Qwen2.5-Coder-1.5B-Instruct (Q4 GGUF), joined from its PyPI parts by
modelfile.py; any other GGUF is one setting away (``llm_model_path``), and
``llm_backend = "http"`` talks to llama-server, vLLM or Ollama instead.

One llama.cpp model instance is shared per process (:func:`load_chat_model` caches it), and
requests take turns through a FIFO :class:`TurnQueue`: a second question waits for the first
answer instead of crashing the context or interleaving tokens.

    >>> model = load_chat_model(Settings.load())                    # doctest: +SKIP
    >>> gen = model.stream([Message("user", "你好")], max_tokens=16)  # doctest: +SKIP
    >>> "".join(gen), gen.usage.completion_tokens                   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from legalrag.config import Settings
from legalrag.errors import ModelError
from legalrag.answer.modelfile import (  # noqa: F401 - re-exported: callers find model files here too
    DEFAULT_MODEL_NAME,
    check_gguf,
    default_model_parts,
    default_model_path,
    join_parts,
    resolve_model_path,
    smollm2_path,
)
from legalrag.answer.prompt import Message

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Usage:
    """What one generation cost. Times in milliseconds. For llama.cpp the prefill/decode
    counts and times are llama.cpp's own counters (tokens evaluated as a batch vs one by
    one); an HTTP backend only has wall-clock time, split at the first token."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int  # prompt tokens whose KV state was reused from the previous request
    queue_ms: float  # waiting for other requests to finish
    first_token_ms: float  # from our turn starting to the first text piece
    total_ms: float  # from our turn starting to the end
    prefill_tokens: int
    prefill_ms: float
    decode_tokens: int
    decode_ms: float
    finish_reason: str  # stop, length, or cancelled
    threads: int = 0  # llama.cpp threads at the start (0: not known, e.g. HTTP)

    @property
    def prefill_tps(self) -> float:
        """Prompt tokens evaluated per second."""
        return self.prefill_tokens / (self.prefill_ms / 1000) if self.prefill_ms > 0 else 0.0

    @property
    def decode_tps(self) -> float:
        """Answer tokens generated per second."""
        return self.decode_tokens / (self.decode_ms / 1000) if self.decode_ms > 0 else 0.0


class Generation:
    """The text pieces of one answer, produced lazily; ``usage`` is set once exhausted.

    Closing it early (a user pressing stop) ends generation and frees the model's turn.
    """

    def __init__(self, run: Callable[[Generation], Iterator[str]]) -> None:
        self.usage: Usage | None = None
        self._it = run(self)

    def __iter__(self) -> Generation:
        return self

    def __next__(self) -> str:
        return next(self._it)

    def close(self) -> None:
        self._it.close()

    def text(self) -> str:
        """All remaining pieces joined (for callers that do not stream)."""
        return "".join(self)


class ChatModel(Protocol):
    """What the assistant needs from a model; both backends and test doubles provide it."""

    name: str
    n_ctx: int

    def count_tokens(self, text: str) -> int:
        """Tokens the model spends on text (used to fit sources into the context)."""
        ...

    def stream(self, messages: Sequence[Message], *, max_tokens: int,
               temperature: float = 0.0, stop: Sequence[str] = (),
               seed: int | None = None) -> Generation:
        """Generate a reply to messages, piece by piece."""
        ...

    def waiting(self) -> int:
        """Requests running or queued right now (0: a new request starts at once)."""
        ...


class TurnQueue:
    """A FIFO lock: requests are served in arrival order, and each can ask how many are
    ahead of it. threading.Lock is not fair, so a busy UI could starve one user."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def waiting(self) -> int:
        """Requests holding or waiting for a turn."""
        with self._cond:
            return self._next_ticket - self._serving

    @contextlib.contextmanager
    def turn(self) -> Iterator[int]:
        """Wait for our turn; yields how many requests were ahead when we arrived."""
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            ahead = ticket - self._serving
            while self._serving != ticket:
                self._cond.wait()
        try:
            yield ahead
        finally:
            with self._cond:
                self._serving += 1
                self._cond.notify_all()


# ---------------------------------------------------------------- CPU contention

def _cpu_sample() -> tuple[int, int, int] | None:
    """(busy, total) jiffies of the whole machine and this process's own, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            vals = [int(v) for v in f.readline().split()[1:9]]
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = vals[3] + vals[4]  # idle + iowait
    own = int(fields[11]) + int(fields[12])  # utime + stime, same clock ticks
    return sum(vals) - idle, sum(vals), own


def others_cores(prev: tuple[int, int, int], cur: tuple[int, int, int], cores: int) -> float:
    """Cores' worth of CPU time used by other processes between two _cpu_sample()s.

    >>> others_cores((100, 200, 10), (250, 400, 60), 2)  # 150 busy of 200, 50 ours
    1.0
    """
    busy, total, own = (c - p for c, p in zip(cur, prev, strict=True))
    return max(busy - own, 0) / total * cores if total > 0 else 0.0


class CpuWatch:
    """How many cores other processes keep busy, measured every second from /proc.

    Why: llama.cpp's threads wait for each other at every layer. When another job holds a
    core, a second llama.cpp thread is descheduled at each barrier and decoding collapses
    (measured here with a concurrent index build: 2 threads decode at 0.6–3 tokens/s, 1
    thread at 15–24). So a model with ``llm_threads = 0`` uses all cores when they are
    free and leaves the busy ones alone (docs/benchmarks.md, "Generation").
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.cores = os.cpu_count() or 1
        self.others = 0.0  # cores' worth of CPU time other processes used, last interval
        self.available = _cpu_sample() is not None
        self._interval = interval
        if self.available:
            threading.Thread(target=self._run, name="legalrag-cpuwatch", daemon=True).start()

    def _run(self) -> None:
        prev = _cpu_sample()
        while True:
            time.sleep(self._interval)
            cur = _cpu_sample()
            if prev is None or cur is None or cur[1] <= prev[1]:
                prev = cur
                continue
            self.others = others_cores(prev, cur, self.cores)
            prev = cur

    def threads(self) -> int:
        """Threads to run on: the cores the other processes leave free, at least one."""
        return max(1, min(self.cores, round(self.cores - self.others)))


_WATCH: CpuWatch | None = None
_WATCH_LOCK = threading.Lock()


def cpu_watch() -> CpuWatch:
    """The process's one CpuWatch, started on first use."""
    global _WATCH
    with _WATCH_LOCK:
        if _WATCH is None:
            _WATCH = CpuWatch()
        return _WATCH


# ---------------------------------------------------------------- llama.cpp in process


class LlamaCppModel:
    """A GGUF run in this process by llama-cpp-python, formatted with the chat template the
    GGUF carries. Requests take turns; consecutive requests sharing a prefix (the system
    prompt) reuse its KV cache, which llama-cpp-python does by itself when tokens match.

    The chat template is applied here rather than through ``create_chat_completion`` so
    that the exact prompt tokens are known: usage is then counted, not estimated, and a
    benchmark can feed the very same tokens to raw llama-cpp-python.
    """

    def __init__(self, path: Path, *, n_ctx: int = 4096, threads: int = 0,
                 seed: int = 42, name: str | None = None) -> None:
        try:
            import llama_cpp
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as e:  # pragma: no cover - a broken install
            raise ModelError(f"llama-cpp-python cannot be imported: {e}",
                             fix="pip install llama-cpp-python") from None
        self._lib = llama_cpp
        self.path = Path(path)
        self.name = name or self.path.stem
        self.seed = seed
        # threads > 0: fixed; 0: adapt to what other processes leave free (CpuWatch)
        self.watch = cpu_watch() if threads == 0 else None
        n_threads = threads or os.cpu_count() or 1
        self.threads = n_threads
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(self.path), n_ctx=n_ctx, n_threads=n_threads,
                n_threads_batch=n_threads, seed=seed, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"llama.cpp cannot load {self.path}: {e}",
                             fix="check that the file is a complete GGUF model") from None
        template = self._llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelError(f"{self.path} has no chat template in its metadata",
                             fix="use an instruction-tuned GGUF that carries one")
        model = self._llama._model
        eos = model.token_get_text(self._llama.token_eos())
        bos_id = self._llama.token_bos()
        bos = model.token_get_text(bos_id) if bos_id != -1 else ""
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._eos_text = eos
        self.n_ctx = self._llama.n_ctx()
        self.queue = TurnQueue()

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """The exact tokens the model will evaluate for messages (template applied)."""
        result = self._formatter(messages=[m.as_dict() for m in messages])
        return self._llama.tokenize(result.prompt.encode("utf-8"),
                                    add_bos=not result.added_special, special=True)

    def waiting(self) -> int:
        return self.queue.waiting()

    def reset_cache(self) -> None:
        """Forget the KV cache, so the next prompt is evaluated from scratch (benchmarks)."""
        with self.queue.turn():
            self._llama.reset()
            self._llama._ctx.kv_cache_clear()

    def _adapt_threads(self) -> int:
        """Switch to the thread count CpuWatch suggests (no-op with fixed threads)."""
        if self.watch is not None and self.watch.available:
            n = self.watch.threads()
            if n != self.threads:
                log.info("llama.cpp threads %d -> %d (other processes busy on %.1f cores)",
                         self.threads, n, self.watch.others)
                self._llama._ctx.set_n_threads(n, n)
                self.threads = n
        return self.threads

    def _perf(self) -> tuple[float, float, int, int]:
        p = self._lib.llama_perf_context(self._llama._ctx.ctx)
        return p.t_p_eval_ms, p.t_eval_ms, p.n_p_eval, p.n_eval

    def _cached_prefix(self, tokens: list[int]) -> int:
        """How many leading prompt tokens llama-cpp-python will take from its KV cache."""
        held = self._llama._input_ids[: self._llama.n_tokens]
        n = 0
        for a, b in zip(held, tokens, strict=False):
            if a != b:
                break
            n += 1
        return min(n, len(tokens) - 1)  # the last prompt token is always re-evaluated

    def stream(self, messages: Sequence[Message], *, max_tokens: int,
               temperature: float = 0.0, stop: Sequence[str] = (),
               seed: int | None = None) -> Generation:
        tokens = self.prompt_tokens(messages)
        if len(tokens) + max_tokens > self.n_ctx:
            raise ModelError(f"prompt of {len(tokens)} tokens plus {max_tokens} answer tokens "
                             f"exceeds the model context of {self.n_ctx}",
                             fix="raise llm_context or lower llm_max_tokens")

        def run(gen: Generation) -> Iterator[str]:
            arrived = time.perf_counter()
            with self.queue.turn():
                start = time.perf_counter()
                cached = self._cached_prefix(tokens)
                threads = self._adapt_threads()
                perf0 = self._perf()
                first = 0.0
                finish = "cancelled"
                chunks = self._llama.create_completion(
                    prompt=tokens, stream=True, max_tokens=max_tokens,
                    temperature=temperature, top_p=0.95, top_k=40, min_p=0.05,
                    repeat_penalty=1.0, seed=self.seed if seed is None else seed,
                    stop=[self._eos_text, *stop])
                try:
                    for i, chunk in enumerate(chunks, 1):
                        choice = chunk["choices"][0]
                        finish = choice.get("finish_reason") or finish
                        piece = choice.get("text")
                        if piece:
                            first = first or time.perf_counter()
                            yield piece
                        if i % 16 == 0:  # contention changes while an answer is written
                            self._adapt_threads()
                finally:
                    chunks.close()
                    end = time.perf_counter()
                    t_p, t_e, n_p, n_e = (b - a for a, b in zip(perf0, self._perf(),
                                                              strict=True))
                    # The state now holds prompt + completion; the final sampled token
                    # (end-of-turn or the one that hit max_tokens) is never evaluated.
                    # llama-cpp-python sometimes evaluates that last token too (seen when
                    # its stop-string look-ahead held text back), so cap at max_tokens.
                    completion = min(max(self._llama.n_tokens - len(tokens) + 1, 0), max_tokens)
                    gen.usage = Usage(
                        prompt_tokens=len(tokens), completion_tokens=completion,
                        cached_tokens=cached, queue_ms=(start - arrived) * 1000,
                        first_token_ms=((first or end) - start) * 1000,
                        total_ms=(end - start) * 1000,
                        prefill_tokens=int(n_p), prefill_ms=float(t_p),
                        decode_tokens=int(n_e), decode_ms=float(t_e),
                        finish_reason=finish, threads=threads)

        return Generation(run)


# ---------------------------------------------------------------- OpenAI-compatible HTTP

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
                 timeout: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
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
               seed: int | None = None) -> Generation:
        body: dict[str, Any] = {
            "model": self.model, "messages": [m.as_dict() for m in messages],
            "max_tokens": max_tokens, "temperature": temperature, "stream": True,
            "stream_options": {"include_usage": True}}
        if stop:
            body["stop"] = list(stop)
        if seed is not None:
            body["seed"] = seed
        prompt_estimate = sum(estimate_tokens(m.content) for m in messages)

        def run(gen: Generation) -> Iterator[str]:
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

        return Generation(run)

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


# ---------------------------------------------------------------- one model per process

_MODELS: dict[tuple[Any, ...], ChatModel] = {}
_MODELS_LOCK = threading.Lock()


def load_chat_model(settings: Settings) -> ChatModel:
    """The chat model the settings describe, loaded once per process and shared."""
    if settings.llm_backend == "http":
        key: tuple[Any, ...] = ("http", settings.llm_http_url, settings.llm_http_model,
                                settings.llm_context)
    else:
        path = resolve_model_path(settings)
        key = ("llama", str(path), settings.llm_context, settings.llm_threads,
               settings.llm_seed)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            if key[0] == "http":
                model = HttpChatModel(settings.llm_http_url, model=settings.llm_http_model,
                                      n_ctx=settings.llm_context)
            else:
                name = DEFAULT_MODEL_NAME if not settings.llm_model_path else None
                t0 = time.perf_counter()
                model = LlamaCppModel(Path(key[1]), n_ctx=settings.llm_context,
                                      threads=settings.llm_threads, seed=settings.llm_seed,
                                      name=name)
                log.info("loaded %s in %.1f s", model.name, time.perf_counter() - t0)
            _MODELS[key] = model
        return model
