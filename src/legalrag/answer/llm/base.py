"""What every chat model backend shares: the message and usage records, the lazily
produced :class:`Generation`, the :class:`ChatModel` protocol a backend implements, and the
FIFO :class:`TurnQueue` that makes requests take turns on one in-process model.

A new backend is one module beside llama.py and http.py that provides ``ChatModel``, and a
branch in :func:`legalrag.answer.llm.load_chat_model`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message; role is system, user or assistant."""

    role: str
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


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


class TurnStarted:
    """The type of TURN_STARTED."""

    def __repr__(self) -> str:
        return "TURN_STARTED"


TURN_STARTED = TurnStarted()
"""What a backend's run yields, before any text, when the model starts on this request
(its turn in the queue has come). Generation passes it to no one: a caller that wants the
moment calls ``wait_turn``."""


class Generation:
    """The text pieces of one answer, produced lazily; ``usage`` is set once exhausted.

    Closing it early (a user pressing stop) ends generation and frees the model's turn.
    """

    def __init__(self, run: Callable[[Generation], Iterator[str | TurnStarted]],
                 cancel: threading.Event | None = None) -> None:
        self.usage: Usage | None = None
        self._cancel = cancel or threading.Event()
        self._it = run(self)
        self._held: list[str] = []
        self._started = False

    def __iter__(self) -> Generation:
        return self

    def __next__(self) -> str:
        if self._held:
            return self._held.pop()
        while True:
            piece = next(self._it)
            if isinstance(piece, str):
                return piece
            self._started = True

    def wait_turn(self) -> bool:
        """Block until the model starts on this request: the backend's TURN_STARTED, or
        its first piece from a backend that does not yield one. False when the request
        ended first (cancelled while it waited in the queue)."""
        if self._started or self._held:
            return True
        try:
            piece = next(self._it)
        except StopIteration:
            return False
        if isinstance(piece, str):
            self._held.append(piece)
        else:
            self._started = True
        return True

    def close(self) -> None:
        self._it.close()

    def cancel(self) -> None:
        """Ask the generation to stop, from any thread. ``close`` cannot reach a
        generation that is busy inside the model (its prefill runs for seconds without
        yielding); a backend checks ``cancelled`` between prompt batches and tokens and
        ends at the next check."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def cancel_event(self) -> threading.Event:
        """The event cancel() sets (a backend waits on it, e.g. in its queue)."""
        return self._cancel

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
               seed: int | None = None, grammar: str | None = None,
               cancel: threading.Event | None = None) -> Generation:
        """Generate a reply to messages, piece by piece; grammar (GBNF) constrains the
        text where the backend supports it (answer/grammar.py); setting cancel (from any
        thread) ends the generation at the backend's next check. The backend's run yields
        TURN_STARTED when the model starts on the request, so a queued caller can say so
        (Generation.wait_turn); without it the first piece stands for that moment."""
        ...

    def waiting(self) -> int:
        """Requests running or queued right now (0: a new request starts at once)."""
        ...


class Cancelled(Exception):
    """A request was cancelled while it waited for its turn."""


class TurnQueue:
    """A FIFO lock: requests are served in arrival order, and each can ask how many are
    ahead of it. threading.Lock is not fair, so a busy UI could starve one user.

    A request cancelled while it waits (the user pressed 停止 while queued) leaves the
    line at once; its place is skipped when the line reaches it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self._abandoned: set[int] = set()

    def waiting(self) -> int:
        """Requests holding or waiting for a turn."""
        with self._cond:
            return self._next_ticket - self._serving - len(self._abandoned)

    @contextlib.contextmanager
    def turn(self, cancel: threading.Event | None = None) -> Iterator[int]:
        """Wait for our turn; yields how many requests were ahead when we arrived.
        Raises Cancelled when cancel is set before the turn comes."""
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            ahead = ticket - self._serving - len(self._abandoned)
            while self._serving != ticket:
                if cancel is not None and cancel.is_set():
                    self._abandoned.add(ticket)
                    raise Cancelled
                self._cond.wait(0.2 if cancel is not None else None)
        try:
            yield ahead
        finally:
            with self._cond:
                self._serving += 1
                while self._serving in self._abandoned:
                    self._abandoned.discard(self._serving)
                    self._serving += 1
                self._cond.notify_all()
