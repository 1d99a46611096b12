"""The records of a browser conversation: the options a user sets per question, each
exchange (question, sources, answer as far as it has come) and the session holding them.
The chat service fills them in; the views render them."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

from legalrag.answer.assistant import Answer, Turn
from legalrag.answer.provision import Passage
from legalrag.config import Settings
from legalrag.errors import QueryError
from legalrag.records import Hit
from legalrag.vocab import MODE_NAMES, MODES

ANSWER_LENGTHS = (("简短", 256), ("标准", 512), ("详细", 1024))
MODE_CHOICES = tuple((MODE_NAMES[m], m) for m in MODES)
MAX_SOURCES = 20


@dataclass(frozen=True)
class ChatOptions:
    """What a user can set per question: sources retrieved, retrieval mode, old versions,
    answer length in tokens."""

    k: int = 5
    mode: str = "hybrid"
    include_old: bool = False
    max_tokens: int = 512

    @classmethod
    def defaults(cls, settings: Settings) -> ChatOptions:
        return cls(settings.answer_top_k, settings.retrieval_mode,
                   settings.include_old_versions, settings.llm_max_tokens)

    def checked(self) -> ChatOptions:
        """These options, or QueryError naming the one that is out of range."""
        try:
            k, max_tokens = int(self.k), int(self.max_tokens)
        except (TypeError, ValueError):
            raise QueryError("来源数量和回答长度必须是整数") from None
        if not 1 <= k <= MAX_SOURCES:
            raise QueryError(f"来源数量 {k} 超出范围", fix=f"选择 1 到 {MAX_SOURCES} 之间的数")
        if self.mode not in MODES:
            raise QueryError(f"未知的检索方式 {self.mode!r}", fix="选择 " + "、".join(MODES))
        if not 16 <= max_tokens <= 4096:
            raise QueryError(f"回答长度 {max_tokens} 超出范围")
        return ChatOptions(k, self.mode, bool(self.include_old), max_tokens)


@dataclass
class Exchange:
    """One question of a session and what has come of it so far."""

    n: int  # 1-based, names the anchors of its sources
    question: str
    state: str = "retrieving"  # retrieving, waiting, queued, writing, done, error, stopped
    rewritten: str = ""
    hits: tuple[Hit, ...] = ()
    text: str = ""  # the answer as streamed so far
    answer: Answer | None = None
    error: str = ""
    ahead: int = 0  # answers ahead in the model queue
    dense_live: bool = True
    provisions: tuple[Passage, ...] = ()  # the paragraphs quoted before the model's words
    premise: tuple[str, ...] = ()  # what the question cites that the corpus cannot back
    reading: tuple[int, float] | None = None  # sources the model reads, estimated seconds
    # set by 停止 (ChatService.stop): ends generation, also during the model's prefill
    stop: threading.Event = field(default_factory=threading.Event, repr=False,
                                  compare=False)
    _html: str = field(default="", repr=False)  # rendered once finished

    @property
    def finished(self) -> bool:
        return self.state in ("done", "error", "stopped")


@dataclass
class ChatSession:
    """A browser session's conversation. Lives in the UI's per-session state."""

    exchanges: list[Exchange] = field(default_factory=list)
    # also the conversation's key in the history (history.py): long enough not to collide
    id: str = field(default_factory=lambda: secrets.token_hex(8))

    def history(self) -> list[Turn]:
        """The questions asked so far, oldest first, for rewriting follow-up questions:
        answered ones, and stopped ones too (the user stopped the answer, not the topic;
        a follow-up after 停止 still leans on it). Rejected input is no context."""
        out: list[Turn] = []
        for e in self.exchanges:
            if e.answer is not None:
                out.append(e.answer.turn)
            elif e.state == "stopped" and e.question.strip():
                rewritten = e.rewritten if e.rewritten != e.question else ""
                out.append(Turn(e.question, rewritten))
        return out
