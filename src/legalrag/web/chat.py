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
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from legalrag.answer.assistant import (
    Assistant,
    Final,
    Provision,
    Queued,
    Reading,
    Sources,
    Token,
    corpus_facts,
    plain_question,
)
from legalrag.answer.llm import ChatModel
from legalrag.config import Settings
from legalrag.errors import LegalRagError, ModelError, QueryError
from legalrag.retrieval.live import LiveRetriever
from legalrag.retrieval.retriever import Retriever
from legalrag.web.session import ChatOptions, ChatSession, Exchange
from legalrag.web.views import render_exchange, render_question, render_sources

log = logging.getLogger(__name__)
qlog = logging.getLogger("legalrag.questions")



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
        # One CorpusFacts per build, shared by every option set, built before a new build
        # serves (in the swap thread), so no question waits for it.
        self.live.add_warmer(corpus_facts)
        self.live.watch()  # load a newly published build at once, in the background
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
        """Load the index, its models and the chat model and read the prompt prefix every
        answer shares (Assistant.warm_up) now, in a background thread at launch, so the
        first question waits for none of them."""
        assistant, _ = self.assistant(ChatOptions.defaults(self.settings))
        assistant.warm_up()

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
            events = assistant.stream(question, session.history()[-8:], k=options.k,
                                      stop=ex.stop)
            for event in events:
                if ex.stop.is_set():  # 停止 was pressed: nothing more to show
                    break
                if isinstance(event, Sources):
                    ex.rewritten = event.rewritten_query
                    ex.hits, ex.premise = event.hits, event.premise
                    ex.state = "waiting"
                elif isinstance(event, Provision):
                    ex.provisions = event.passages
                elif isinstance(event, Reading):  # the model's turn: out of the queue
                    ex.reading, ex.state = (event.sources, event.seconds), "waiting"
                elif isinstance(event, Queued):
                    ex.ahead, ex.state = event.ahead, "queued"
                elif isinstance(event, Token):
                    ex.text += event.text
                    ex.state = "writing"
                elif isinstance(event, Final):
                    ex.answer, ex.hits, ex.state = event.answer, event.answer.hits, "done"
                yield self.view(session)
            if ex.stop.is_set():
                ex.state = "stopped"
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

    def stop(self, session: ChatSession) -> ChatView:
        """停止: end the answer being written in session, at once. The bubble says 已停止
        now; the model stops at its next check (between prompt batches or tokens, a
        fraction of a second) and takes the next question."""
        for ex in session.exchanges:
            if not ex.finished:
                ex.stop.set()
                ex.state = "stopped"
        return self.view(session)

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


EMPTY_QUESTION = "请输入一个法律问题，例如：试用期最长可以约定多久？"
HINT_TITLE = "提示"  # the toast's title (Gradio's default is the English "Info")


def describe_error(e: LegalRagError, question: object, settings: Settings) -> str:
    """A LegalRagError as a message for the chat, in Chinese where the cause is known."""
    if not isinstance(question, str):
        return "问题必须是文字。"
    q = plain_question(question).strip()  # as the assistant read it: 全角空格 is a space
    if isinstance(e, QueryError):
        if not q:
            return EMPTY_QUESTION
        if len(q) > settings.max_question_chars:
            return (f"问题太长（{len(q):,} 字，上限 {settings.max_question_chars:,} 字）。"
                    "请只保留与问题有关的关键事实后再问。")
        if e.code == "control_characters":
            return "问题中含有无法识别的控制字符，请以普通文字重新输入。"
        if e.code == "not_chinese":
            # one English line: whoever asked in English may not read the Chinese one
            return ("请用中文提问：法库中的法律条文都是中文，其他语言的问题检索不到。"
                    "例如：试用期最长可以约定多久？"
                    "（Please ask in Chinese: the statutes here are in Chinese only.）")
        return f"无法处理这个问题：{e}"
    if isinstance(e, ModelError):
        return f"回答模型无法使用：{e}。已检索到的条文仍显示在右侧。"
    return f"出错了：{e}"


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
