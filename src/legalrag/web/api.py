"""The HTTP API of `legalrag serve`, for tools that are not a browser.

OpenAI-compatible, so any client of that API (the ``openai`` package, Open WebUI, curl)
can use legalrag as a model, plus two routes of its own:

    GET  /v1/models             the one model, "legalrag"
    POST /v1/chat/completions   an answer from the statutes; "stream": true for SSE
    POST /v1/retrieve           {"query", "k", "mode", "include_old"} -> ranked articles
    POST /v1/check              {"text"} -> every citation in it, labelled

    >>> from openai import OpenAI                                        # doctest: +SKIP
    >>> client = OpenAI(base_url="http://127.0.0.1:7860/v1", api_key="…")
    >>> r = client.chat.completions.create(model="legalrag",
    ...     messages=[{"role": "user", "content": "试用期最长多久？"}])
    >>> r.choices[0].message.content, r.model_extra["legalrag"]["citations"]

The answer text is the checked one (every citation that is not verified is marked, then
the notes and the disclaimer). Each response adds a ``legalrag`` field: the sources (the
retrieved articles, numbered as the answer cites them), the citations with their labels,
the label counts. A stream sends the sources in its first chunk, then the answer's
pieces, then the checked remainder with the citations in the last chunk; when the check
marked a citation the model wrote, the checked answer follows in full, so no invented
citation is left unmarked in what a client shows.

The last ``user`` message is the question; the earlier ones are the history that a
follow-up is rewritten with; ``system`` messages are ignored (the statutes' own prompt
applies). Extra request fields: ``k`` (sources, 1–20), ``mode`` (hybrid, bm25, dense),
``include_old`` (old versions too); ``max_tokens`` sets the answer length.

Exposure follows the page's: the server binds settings.host (127.0.0.1 by default). When
login is on, or an api_token is set, every route needs ``Authorization: Bearer
<api_token>``. Bodies above api_max_request_bytes are refused. Every error is JSON in
OpenAI's shape, ``{"error": {"message", "type", "param", "code", "fix"}}``, in Chinese,
naming the problem and the fix.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from legalrag.answer.assistant import Answer, Final, Queued, Sources, Token, validate_question
from legalrag.answer.check import CheckedCitation, CorpusFacts, check_text
from legalrag.config import Settings
from legalrag.errors import (
    IndexBusyError,
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    LegalRagError,
    ModelError,
    QueryError,
)
from legalrag.records import Hit
from legalrag.retrieval.rewrite import Turn
from legalrag.vocab import LABEL_NAMES, MODES
from legalrag.web.chat import ChatService, describe_error
from legalrag.web.session import MAX_SOURCES, ChatOptions

log = logging.getLogger(__name__)

MODEL_ID = "legalrag"
MAX_HISTORY = 8  # earlier questions kept for rewriting a follow-up, as in the chat
MAX_CHECK_CHARS = 50_000
MAX_RETRIEVE_K = 100
CHECKED_INTRO = "\n\n核对后的回答（〔〕内为核对标记）：\n"


class ApiError(Exception):
    """A request the API refuses: HTTP status, a message and the fix, both in Chinese."""

    def __init__(self, status: int, message: str, fix: str = "", *, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.fix, self.param, self.code = (
            status, message, fix, param, code)

    @property
    def kind(self) -> str:
        return {400: "invalid_request_error", 401: "authentication_error",
                404: "invalid_request_error", 413: "invalid_request_error"}.get(
            self.status, "server_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code, "fix": self.fix}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def library_error(e: LegalRagError, question: object, settings: Settings) -> ApiError:
    """A LegalRagError of the pipeline as an API error with the right status."""
    message = describe_error(e, question, settings) if isinstance(question, str) else str(e)
    if isinstance(e, QueryError):
        return ApiError(400, message, e.fix or "", code="invalid_question")
    if isinstance(e, IndexBusyError | IndexMissingError | IndexMismatchError
                  | IndexCorruptError | ModelError):
        return ApiError(503, message, e.fix or "稍后重试；若问题持续，请查看服务器日志",
                        code="unavailable")
    return ApiError(500, message, e.fix or "查看服务器日志", code="internal_error")


# ---------------------------------------------------------------- auth and request bodies


def check_auth(settings: Settings, authorization: str | None) -> None:
    """Nothing when the request may use the API; else ApiError 401 saying what to send."""
    if not settings.auth_user and not settings.api_token:
        return
    if not settings.api_token:
        raise ApiError(401, "网页已启用登录，但服务器没有设置 API 令牌，因此接口不可用",
                       "管理员在设置中加入 api_token（或环境变量 LEGALRAG_API_TOKEN）后重启，"
                       "请求时带上 Authorization: Bearer <令牌>", code="no_api_token")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "缺少 API 令牌", "在请求头中加入 Authorization: Bearer <令牌>",
                       code="missing_token")
    if not hmac.compare_digest(token.strip().encode(), settings.api_token.encode()):
        raise ApiError(401, "API 令牌不正确", "使用服务器设置中的 api_token",
                       code="invalid_token")


async def read_json(request: Request, limit: int) -> dict:
    """The request body as a JSON object, read no further than limit bytes."""
    declared = request.headers.get("content-length")
    too_big = ApiError(413, f"请求体太大（上限 {limit:,} 字节）",
                       "缩短问题或历史消息，或由管理员调大 api_max_request_bytes",
                       code="request_too_large")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > limit:
            raise too_big
    if not data.strip():
        raise ApiError(400, "请求体为空", '发送一个 JSON 对象，例如 {"messages": [...]}',
                       code="empty_body")
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        bad_json = isinstance(e, json.JSONDecodeError)
        where = f"（第 {e.lineno} 行第 {e.colno} 列）" if bad_json else ""
        raise ApiError(400, f"请求体不是有效的 UTF-8 JSON{where}",
                       "检查 JSON 语法（引号、逗号、括号），并以 UTF-8 编码发送",
                       code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "请求体必须是 JSON 对象", '用 {"字段": 值} 的形式发送',
                       code="invalid_json")
    return body


def _field(body: dict, name: str, kind: type | tuple[type, ...], default: Any, what: str
           ) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    # bool is an int in Python; a JSON true is not a number of sources.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in
                                       (kind if isinstance(kind, tuple) else (kind,))):
        raise ApiError(400, f"字段 {name} 必须是{what}", f"把 {name} 改为{what}", param=name,
                       code="invalid_type")
    return value


def _int(body: dict, name: str, default: int, lo: int, hi: int) -> int:
    value = _field(body, name, int, default, "整数")
    if not lo <= value <= hi:
        raise ApiError(400, f"字段 {name} = {value} 超出范围", f"使用 {lo} 到 {hi} 之间的整数",
                       param=name, code="out_of_range")
    return value


def _mode(body: dict, default: str) -> str:
    mode = _field(body, "mode", str, default, "字符串")
    if mode not in MODES:
        raise ApiError(400, f"未知的检索方式 {mode!r}", "使用 " + "、".join(MODES),
                       param="mode", code="invalid_mode")
    return mode


def _text(content: object, where: str) -> str:
    """A message's content: a string, or OpenAI's list of parts of which text is kept."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" \
                    or not isinstance(part.get("text"), str):
                raise ApiError(400, f"{where} 中有不是文字的内容（只接受文字）",
                               '使用字符串，或 [{"type": "text", "text": "…"}]',
                               param="messages", code="invalid_content")
            texts.append(part["text"])
        return "".join(texts)
    raise ApiError(400, f"{where} 的 content 必须是文字", '使用 "content": "问题"',
                   param="messages", code="invalid_content")


@dataclass(frozen=True)
class ChatRequest:
    question: str
    history: tuple[Turn, ...]
    options: ChatOptions
    stream: bool


def parse_chat(body: dict, settings: Settings) -> ChatRequest:
    """A chat-completions body as a ChatRequest, or ApiError 400 naming the bad field."""
    model = _field(body, "model", str, MODEL_ID, "字符串")
    if model != MODEL_ID:
        raise ApiError(404, f"没有名为 {model!r} 的模型", f'使用 "model": "{MODEL_ID}"'
                       "（GET /v1/models 列出可用模型）", param="model",
                       code="model_not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "缺少 messages，或它不是非空列表",
                       '发送 "messages": [{"role": "user", "content": "问题"}]',
                       param="messages", code="missing_messages")
    questions: list[str] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user",
                                                              "assistant", "tool"):
            raise ApiError(400, f"{where} 不是带 role 的消息对象",
                           'role 取 "system"、"user" 或 "assistant"', param="messages",
                           code="invalid_message")
        if m["role"] == "user":
            questions.append(_text(m.get("content"), where))
    if messages[-1].get("role") != "user":
        raise ApiError(400, "最后一条消息必须是用户的问题（role 为 user）",
                       "把要问的问题放在 messages 的最后", param="messages",
                       code="invalid_message")
    _int(body, "n", 1, 1, 1)  # one answer per request
    defaults = ChatOptions.defaults(settings)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    options = ChatOptions(
        _int(body, "k", defaults.k, 1, MAX_SOURCES), _mode(body, defaults.mode),
        _field(body, "include_old", bool, defaults.include_old, "布尔值（true 或 false）"),
        _int({"max_tokens": max_tokens}, "max_tokens", defaults.max_tokens, 16, 4096))
    question = questions[-1]
    try:
        question = validate_question(question, settings.max_question_chars)
    except QueryError as e:
        raise library_error(e, question, settings) from None
    history = tuple(Turn(q.strip()) for q in questions[:-1] if q.strip())[-MAX_HISTORY:]
    stream = _field(body, "stream", bool, False, "布尔值（true 或 false）")
    return ChatRequest(question, history, options, stream)


# ---------------------------------------------------------------- responses


def source_dict(hit: Hit, shown: bool | None = None) -> dict:
    """One retrieved article as the API reports it; n is the number the answer cites."""
    a = hit.article
    out = {"n": hit.rank, "citation": a.citation, "id": a.id, "law": a.law,
           "law_title": a.law_title, "label": a.label, "path": list(a.path), "text": a.text,
           "version": a.version, "in_force": a.in_force, "level": a.level,
           "score": round(hit.score, 6)}
    if shown is not None:
        out["shown_to_model"] = shown
    return out


def citation_dict(c: CheckedCitation) -> dict:
    return {**c.to_dict(), "citation": c.citation, "label_name": LABEL_NAMES[c.label]}


def answer_extra(answer: Answer) -> dict:
    """The ``legalrag`` field of a finished answer."""
    shown = len(answer.sources)
    return {"question": answer.question, "rewritten_query": answer.rewritten_query,
            "abstained": answer.abstained,
            "sources": [source_dict(h, h.rank <= shown) for h in answer.hits],
            "citations": [citation_dict(c) for c in answer.citations],
            # sentences of the model's text that cite nothing, as [start, end) in it
            "uncited": [{"start": s, "end": e, "text": answer.raw_text[s:e]}
                        for s, e in answer.uncited],
            "labels": answer.labels(), "notes": list(answer.notes),
            "premise": list(answer.premise),
            "timings": answer.timings.to_dict()}


def usage(answer: Answer) -> dict:
    t = answer.timings
    return {"prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
            "total_tokens": t.prompt_tokens + t.completion_tokens}


def completion(answer: Answer, cid: str, created: int) -> dict:
    """A chat.completion object for answer."""
    return {"id": cid, "object": "chat.completion", "created": created, "model": MODEL_ID,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": usage(answer), "legalrag": answer_extra(answer)}


def chunk(cid: str, created: int, delta: dict, finish: str | None = None,
          extra: dict | None = None) -> str:
    """One SSE event of a chat.completion.chunk."""
    body: dict = {"id": cid, "object": "chat.completion.chunk", "created": created,
                  "model": MODEL_ID,
                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                               "logprobs": None}]}
    if extra is not None:
        body["legalrag"] = extra
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def remainder(streamed: str, answer: Answer) -> str:
    """What to send after the streamed pieces so that the whole reads as the checked answer:
    the notes and disclaimer when the text came through unchanged, else the checked answer
    in full after a heading (a citation the check marked must not stay unmarked)."""
    body = streamed.strip()
    if not body:
        return answer.text
    if answer.text.startswith(body):
        return answer.text[len(body):]
    return CHECKED_INTRO + answer.text


# ---------------------------------------------------------------- the library calls


def label_citations(text: str, facts: CorpusFacts) -> list[CheckedCitation]:
    """Every citation in text, labelled against the corpus alone (the checker of
    `legalrag check`). The one place the API calls the checker."""
    return list(check_text(text, facts))


class Api:
    """The routes' work, over the chat's live index and shared model."""

    def __init__(self, settings: Settings, chat: ChatService) -> None:
        self.settings = settings
        self.chat = chat

    def models(self) -> dict:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model",
                                            "created": 0, "owned_by": "legalrag"}]}

    def answer(self, req: ChatRequest) -> dict:
        assistant, _ = self.chat.assistant(req.options.checked())
        answer = assistant.answer(req.question, req.history, k=req.options.k)
        self._log("answered" if not answer.abstained else "abstained", req)
        return completion(answer, _completion_id(), int(time.time()))

    def stream(self, req: ChatRequest) -> Iterator[str]:
        """SSE events: sources, pieces, the checked remainder and citations, [DONE].
        The index is opened here, before the response starts, so a missing index is an
        HTTP error rather than an event in a stream that began with 200."""
        assistant, _ = self.chat.assistant(req.options.checked())
        return self._events(req, assistant.stream(req.question, req.history,
                                                  k=req.options.k))

    def _events(self, req: ChatRequest, events: Iterator) -> Iterator[str]:
        cid, created = _completion_id(), int(time.time())
        streamed: list[str] = []
        outcome = "stopped"
        try:
            for event in events:
                if isinstance(event, Sources):
                    extra = {"question": event.question,
                             "rewritten_query": event.rewritten_query,
                             "abstained": event.abstained,
                             "premise": list(event.premise),
                             "sources": [source_dict(h) for h in event.hits]}
                    yield chunk(cid, created, {"role": "assistant", "content": ""}, None, extra)
                elif isinstance(event, Queued):
                    yield f": 排队中，前面还有 {event.ahead} 个问题\n\n"  # an SSE comment
                elif isinstance(event, Token):
                    streamed.append(event.text)
                    yield chunk(cid, created, {"content": event.text})
                elif isinstance(event, Final):
                    answer = event.answer
                    rest = remainder("".join(streamed), answer)
                    yield chunk(cid, created, {"content": rest}, "stop", answer_extra(answer))
                    outcome = "abstained" if answer.abstained else "answered"
        except LegalRagError as e:
            outcome = "error"
            err = library_error(e, req.question, self.settings)
            yield f"data: {json.dumps(err.body(), ensure_ascii=False)}\n\n"
        except Exception as e:  # a bug must end the stream with an error, not hang it
            log.exception("API answer failed")
            outcome = "error"
            err = ApiError(500, f"内部错误（{type(e).__name__}），已记录在服务器日志中",
                           "请重试；若问题持续，请查看服务器日志", code="internal_error")
            yield f"data: {json.dumps(err.body(), ensure_ascii=False)}\n\n"
        finally:
            events.close()  # frees the model's turn when the client went away
            self._log(outcome, req)
        yield "data: [DONE]\n\n"

    def retrieve(self, body: dict) -> dict:
        query = _field(body, "query", str, None, "字符串")
        if query is None:
            raise ApiError(400, "缺少 query", '发送 {"query": "问题"}', param="query",
                           code="missing_query")
        s = self.settings
        k = _int(body, "k", s.top_k, 1, MAX_RETRIEVE_K)
        mode = _mode(body, s.retrieval_mode)
        include_old = _field(body, "include_old", bool, s.include_old_versions,
                             "布尔值（true 或 false）")
        try:
            query = validate_question(query, s.max_question_chars)
            retriever = self.chat.live.get()
            hits = retriever.search(query, k=k, mode=mode, include_old=include_old)
        except LegalRagError as e:
            raise library_error(e, query, s) from None
        return {"query": query, "k": k, "mode": mode, "include_old": include_old,
                "parts": sorted(retriever.parts), "hits": [h.to_dict() for h in hits]}

    def check(self, body: dict) -> dict:
        text = _field(body, "text", str, None, "字符串")
        if text is None:
            raise ApiError(400, "缺少 text", '发送 {"text": "要核查的文字"}', param="text",
                           code="missing_text")
        if len(text) > MAX_CHECK_CHARS:
            raise ApiError(400, f"文字太长（{len(text):,} 字，上限 {MAX_CHECK_CHARS:,} 字）",
                           "分段核查", param="text", code="text_too_long")
        try:
            assistant, retriever = self.chat.assistant(ChatOptions.defaults(self.settings))
            facts = assistant.facts(retriever)
        except LegalRagError as e:
            raise library_error(e, text, self.settings) from None
        citations = label_citations(text, facts)
        labels: dict[str, int] = {}
        for c in citations:
            labels[c.label] = labels.get(c.label, 0) + 1
        return {"citations": [citation_dict(c) for c in citations], "labels": labels}

    def _log(self, outcome: str, req: ChatRequest) -> None:
        record = {"event": "api_question", "outcome": outcome, "mode": req.options.mode,
                  "k": req.options.k, "stream": req.stream, "history": len(req.history)}
        if self.settings.log_questions:
            record["question"] = req.question
        logging.getLogger("legalrag.questions").info(
            "%s", json.dumps(record, ensure_ascii=False, sort_keys=True))


def _completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


async def _drain(gen: Iterator[str]):
    """An iterator's items, each computed in a worker thread (generation blocks); closing
    this (the client went away) closes the iterator, which frees the model."""
    try:
        while True:
            item = await run_in_threadpool(next, gen, None)
            if item is None:
                return
            yield item
    finally:
        try:
            gen.close()
        except ValueError:  # still running in its worker thread: it ends with the stream
            log.warning("answer stream closed while generating")


# ---------------------------------------------------------------- routes


def routes(settings: Settings, chat: ChatService) -> list:
    """The API's routes, for ``demo.launch(app_kwargs={"routes": …})`` (ui.start)."""
    api = Api(settings, chat)
    router = APIRouter(prefix="/v1")
    limit = settings.api_max_request_bytes

    async def guarded(request: Request, work) -> Any:
        try:
            check_auth(settings, request.headers.get("authorization"))
            return await work()
        except ApiError as e:
            return e.response()
        except LegalRagError as e:
            return library_error(e, None, settings).response()

    @router.get("/models")
    async def models(request: Request):
        async def work():
            return JSONResponse(api.models())
        return await guarded(request, work)

    @router.post("/chat/completions")
    async def chat_completions(request: Request):
        async def work():
            req = parse_chat(await read_json(request, limit), settings)
            try:
                if req.stream:
                    events = await run_in_threadpool(api.stream, req)
                    return StreamingResponse(_drain(events), media_type="text/event-stream",
                                             headers={"Cache-Control": "no-cache",
                                                      "X-Accel-Buffering": "no"})
                return JSONResponse(await run_in_threadpool(api.answer, req))
            except LegalRagError as e:
                raise library_error(e, req.question, settings) from None
        return await guarded(request, work)

    @router.post("/retrieve")
    async def retrieve(request: Request):
        async def work():
            body = await read_json(request, limit)
            return JSONResponse(await run_in_threadpool(api.retrieve, body))
        return await guarded(request, work)

    @router.post("/check")
    async def check(request: Request):
        async def work():
            body = await read_json(request, limit)
            return JSONResponse(await run_in_threadpool(api.check, body))
        return await guarded(request, work)

    return list(router.routes)
