"""Chat sessions for the browser UI: a question goes in, a stream of views comes out.

Gradio-free: ``ChatService.respond`` is a generator a test iterates like the UI does.

    >>> service = ChatService(Settings.load())                      # doctest: +SKIP
    >>> session = ChatSession()
    >>> for view in service.respond(session, "试用期最长可以约定多久？"):   # doctest: +SKIP
    ...     view.messages[-1]["content"], view.sources

The views follow the Assistant's events: the question at once, the retrieved articles in
the sources panel (within about a second), the place in the model queue when another
answer is being written, the answer token by token, then the checked answer with every
citation linked and labelled. Errors (a LegalRagError, bad input, anything unexpected)
become a message in the chat; the session's earlier questions and answers stay.

One structured log line (logger ``legalrag.questions``, JSON) is written per question:
timings, retrieval mode, number of sources, the citation check outcome; the question text
only when the ``log_questions`` setting is on.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from legalrag.answer.assistant import Answer, Assistant, Final, Queued, Sources, Token, Turn
from legalrag.config import Settings
from legalrag.errors import LegalRagError, ModelError, QueryError
from legalrag.answer.llm.base import ChatModel
from legalrag.records import Hit
from legalrag.retrieval.retriever import MODES, LiveRetriever, Retriever
from legalrag.web.views import (
    DENSE_BUILDING,
    esc,
    render_answer,
    render_error,
    render_hits,
    render_streaming,
)

log = logging.getLogger(__name__)
qlog = logging.getLogger("legalrag.questions")

ANSWER_LENGTHS = (("简短", 256), ("标准", 512), ("详细", 1024))
MODE_CHOICES = (("混合检索（推荐）", "hybrid"), ("关键词（BM25）", "bm25"), ("语义向量", "dense"))
MAX_SOURCES = 20
SHOWN_QUESTION_CHARS = 2000  # a 20,000-character paste is not echoed back whole


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
            raise QueryError(f"未知的检索方式 {self.mode!r}", fix="选择 hybrid、bm25 或 dense")
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
    _html: str = field(default="", repr=False)  # rendered once finished

    @property
    def finished(self) -> bool:
        return self.state in ("done", "error", "stopped")


@dataclass
class ChatSession:
    """A browser session's conversation. Lives in the UI's per-session state."""

    exchanges: list[Exchange] = field(default_factory=list)
    id: str = field(default_factory=lambda: secrets.token_hex(4))

    def history(self) -> list[Turn]:
        """Answered turns, oldest first, for rewriting follow-up questions."""
        return [e.answer.turn for e in self.exchanges if e.answer is not None]


@dataclass(frozen=True)
class ChatView:
    """What the chat tab shows: chat messages (role/content dicts) and the sources panel."""

    messages: list[dict]
    sources: str


class ChatService:
    """Answers for every session of one app: the live index, one shared model (its queue
    serialises concurrent answers), an Assistant per option set, and the question log.

    live: the LiveRetriever shared with the knowledge-base tab; model: a ChatModel to use
    instead of the configured one (loaded on first use, once per process).
    """

    def __init__(self, settings: Settings, live: LiveRetriever | None = None,
                 model: ChatModel | None = None) -> None:
        self.settings = settings
        self.live = live or LiveRetriever(settings)
        self._model = model
        self._assistants: dict[tuple, Assistant] = {}
        self._lock = threading.Lock()
        if settings.log_file:
            _log_to_file(Path(settings.log_file))

    def assistant(self, options: ChatOptions) -> tuple[Assistant, Retriever]:
        """The Assistant for these options over the live index (cached per index build, so
        its citation-check tables are built once per build, not per question)."""
        retriever = self.live.get()
        key = (options.mode, options.include_old, options.max_tokens, retriever.build_dir.name)
        with self._lock:
            stale = [k for k in self._assistants if k[3] != key[3]]
            for k in stale:
                del self._assistants[k]
            if key not in self._assistants:
                s = replace(self.settings, retrieval_mode=options.mode,
                            include_old_versions=options.include_old,
                            llm_max_tokens=options.max_tokens)
                self._assistants[key] = Assistant(s, retriever=retriever, model=self._model)
            return self._assistants[key], retriever

    def warm_up(self) -> None:
        """Load the index, the embedding model and the chat model now (in a background
        thread at launch), so the first question does not wait for them."""
        assistant, retriever = self.assistant(ChatOptions.defaults(self.settings))
        retriever.warm_up()
        _ = assistant.model

    def respond(self, session: ChatSession, question: object,
                options: ChatOptions | None = None) -> Iterator[ChatView]:
        """Answer question in session, yielding a view after every visible change."""
        text = question if isinstance(question, str) else ""
        ex = Exchange(len(session.exchanges) + 1, text)
        session.exchanges.append(ex)
        options = options or ChatOptions.defaults(self.settings)
        t0 = time.perf_counter()
        yield self.view(session)
        events = None
        try:
            if not isinstance(question, str):
                raise QueryError("问题必须是文字")
            options = options.checked()
            assistant, retriever = self.assistant(options)
            ex.dense_live = "dense" in retriever.parts
            events = assistant.stream(question, session.history()[-8:], k=options.k)
            for event in events:
                if isinstance(event, Sources):
                    ex.rewritten = event.rewritten_query
                    ex.hits = event.hits
                    ex.state = "waiting"
                elif isinstance(event, Queued):
                    ex.ahead, ex.state = event.ahead, "queued"
                elif isinstance(event, Token):
                    ex.text += event.text
                    ex.state = "writing"
                elif isinstance(event, Final):
                    ex.answer, ex.hits, ex.state = event.answer, event.answer.hits, "done"
                yield self.view(session)
        except LegalRagError as e:
            ex.state, ex.error = "error", describe_error(e, question, self.settings)
            yield self.view(session)
        except Exception as e:  # a bug must not cost the user the conversation
            log.exception("answering failed")
            ex.state = "error"
            ex.error = f"内部错误（{type(e).__name__}），已记录在服务器日志中。请重试或换个问法。"
            yield self.view(session)
        finally:
            if events is not None:
                events.close()  # frees the model's turn when the user stopped the answer
            if not ex.finished:
                ex.state = "stopped"
            self._log(session, ex, options, time.perf_counter() - t0)

    def view(self, session: ChatSession) -> ChatView:
        """The chat messages and the sources panel for session as it is now."""
        messages: list[dict] = []
        for ex in session.exchanges:
            messages.append({"role": "user", "content": render_question(ex.question)})
            messages.append({"role": "assistant", "content": render_exchange(ex)})
        return ChatView(messages, render_sources(session))

    def _log(self, session: ChatSession, ex: Exchange, options: ChatOptions,
             seconds: float) -> None:
        a = ex.answer
        outcome = {"done": "abstained" if a is not None and a.abstained else "answered"}.get(
            ex.state, ex.state)
        record: dict = {
            "event": "question", "session": session.id, "turn": ex.n, "outcome": outcome,
            "mode": options.mode, "k": options.k, "include_old": options.include_old,
            "max_tokens": options.max_tokens, "dense_live": ex.dense_live,
            "hits": len(ex.hits), "sources": len(a.sources) if a else 0,
            "followup": bool(ex.rewritten and ex.rewritten != ex.question.strip()),
            "citations": a.labels() if a else {},
            "timings": a.timings.to_dict() if a else {"total_ms": round(seconds * 1000, 1)},
            "model": a.model if a else "",
        }
        if ex.state == "error":
            record["error"] = ex.error[:200]
        if self.settings.log_questions:
            record["question"] = ex.question
            record["rewritten_query"] = ex.rewritten
        qlog.info("%s", json.dumps(record, ensure_ascii=False, sort_keys=True))


def describe_error(e: LegalRagError, question: object, settings: Settings) -> str:
    """A LegalRagError as a message for the chat, in Chinese where the cause is known."""
    if not isinstance(question, str):
        return "问题必须是文字。"
    q = question.strip()
    if isinstance(e, QueryError):
        if not q:
            return "请输入一个法律问题，例如：试用期最长可以约定多久？"
        if len(q) > settings.max_question_chars:
            return (f"问题太长（{len(q):,} 字，上限 {settings.max_question_chars:,} 字）。"
                    "请只保留与问题有关的关键事实后再问。")
        if "control characters" in e.message:
            return "问题中含有无法识别的控制字符，请以普通文字重新输入。"
        return f"无法处理这个问题：{e}"
    if isinstance(e, ModelError):
        return f"回答模型无法使用：{e}。已检索到的条文仍显示在右侧。"
    return f"出错了：{e}"


# ---------------------------------------------------------------- rendering


def render_question(question: str) -> str:
    q = question.strip()
    if not q:
        return '<span class="lr-empty">（空白问题）</span>'
    if len(q) > SHOWN_QUESTION_CHARS:
        return esc(q[:SHOWN_QUESTION_CHARS]) + f"…（共 {len(q):,} 字）"
    return esc(q)


def render_exchange(ex: Exchange) -> str:
    """The assistant's message for one exchange, in its current state."""
    if ex._html:
        return ex._html
    head = []
    if ex.rewritten and ex.rewritten != ex.question.strip():
        head.append(f'<div class="lr-rewrite">检索用语（结合上文改写）：{esc(ex.rewritten)}</div>')
    if not ex.dense_live:
        head.append(f'<div class="lr-note">{esc(DENSE_BUILDING)}</div>')
    found = f"已检索到 {len(ex.hits)} 条相关条文（见右侧“来源”）"
    if ex.state == "retrieving":
        body = '<div class="lr-pending">正在检索相关法条……</div>'
    elif ex.state == "waiting":
        body = f'<div class="lr-pending">{found}，正在生成回答……</div>'
    elif ex.state == "queued":
        body = (f'<div class="lr-queue">排队中：前面还有 {ex.ahead} 个问题正在由模型回答，'
                f"轮到您时自动开始。{found}，可以先阅读。</div>")
    elif ex.state == "writing":
        body = render_streaming(ex.text)
    elif ex.state == "done" and ex.answer is not None:
        body = render_answer(ex.answer, ex.n)
    elif ex.state == "stopped":
        body = (render_streaming(ex.text).replace('<span class="lr-cursor">▍</span>', "")
                + '\n\n<div class="lr-note">（已停止）</div>')
    else:
        body = render_error(ex.error or "出错了")
    html = "\n\n".join([*head, body])
    if ex.finished:
        ex._html = html
    return html


def render_sources(session: ChatSession) -> str:
    """The sources panel: the latest question's articles open, earlier ones folded."""
    with_hits = [e for e in session.exchanges if e.hits]
    if not with_hits:
        return ('<div class="lr-sources-empty">提问后，检索到的法律条文会先显示在这里，'
                "可以在模型写回答时阅读原文。</div>")
    out = []
    for i, ex in enumerate(reversed(with_hits)):
        given = len(ex.answer.sources) if ex.answer and not ex.answer.abstained else None
        q = ex.question.strip()
        q = q if len(q) <= 40 else q[:40] + "…"
        title = f"第 {ex.n} 问：{esc(q)}"
        if ex.rewritten and ex.rewritten != ex.question.strip():
            title += f'<div class="lr-rewrite">检索用语：{esc(ex.rewritten)}</div>'
        cards = render_hits(ex.hits, ex.n, given)
        if i == 0:
            out.append(f'<section class="lr-turn"><div class="lr-turn-q">{title}</div>'
                       f"{cards}</section>")
        else:
            out.append(f'<details class="lr-turn"><summary>{title}（{len(ex.hits)} 条）'
                       f"</summary>{cards}</details>")
    return "".join(out)


_FILE_HANDLERS: dict[Path, logging.Handler] = {}


def _log_to_file(path: Path) -> None:
    """Append the question log (JSON lines) to path, once per process and path."""
    path = path.expanduser().resolve()
    if path in _FILE_HANDLERS:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(logging.INFO)
    qlog.addHandler(handler)
    if qlog.level == logging.NOTSET or qlog.level > logging.INFO:
        qlog.setLevel(logging.INFO)
    _FILE_HANDLERS[path] = handler
