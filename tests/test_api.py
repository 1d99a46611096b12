"""The HTTP API of `legalrag serve` (web/api.py): the real ``openai`` client against the
server started the way the app starts (ui.start), over the small real index with the
SmolLM2 GGUF through llama.cpp; plus the request parsing as pure functions (fast tier)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from legalrag.answer.assistant import ABSTAIN_TEXT, DISCLAIMER
from legalrag.config import Settings
from legalrag.vocab import IN_FORCE, INVENTED, LABELS, REPEALED

QUESTION = "劳动合同法第十九条规定的试用期最长多久？"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:  # noqa: S310 - 127.0.0.1 only
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def smol_model():
    from legalrag.answer.llm import LlamaCppModel
    from legalrag.answer.modelfile import smollm2_path

    return LlamaCppModel(smollm2_path(), n_ctx=4096, threads=1, seed=7)


def serve(settings, model, tmp_path, **changes):
    from legalrag.web.ui import start

    s = replace(settings, port=free_port(), data_dir=tmp_path, llm_max_tokens=24,
                answer_source_tokens=250, llm_threads=1, **changes)
    return start(s, model=model, update_index=False, warm_up=False)


@pytest.fixture(scope="module")
def server(small_settings, smol_model, tmp_path_factory):
    srv = serve(small_settings, smol_model, tmp_path_factory.mktemp("api"))
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.url + "v1", api_key="unused", max_retries=0, timeout=300)


# ---------------------------------------------------------------- the openai client


def test_a_completion_carries_the_checked_answer_and_its_sources(client):
    r = client.chat.completions.create(model="legalrag",
                                       messages=[{"role": "user", "content": QUESTION}])
    text = r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop" and text.endswith(DISCLAIMER)
    extra = r.model_extra["legalrag"]
    assert not extra["abstained"] and extra["question"] == QUESTION
    assert extra["sources"][0]["citation"] == "《劳动合同法》第十九条"
    assert extra["sources"][0]["n"] == 1 and extra["sources"][0]["shown_to_model"]
    assert "试用期不得超过六个月" in extra["sources"][0]["text"]
    assert all(c["label"] in LABELS for c in extra["citations"])
    assert sum(extra["labels"].values()) == len(extra["citations"])
    for u in extra["uncited"]:  # a sentence that cites nothing follows the answer, listed
        assert f"- {u['text']}。" in text.split("模型的推断（", 1)[1]
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0


def test_a_stream_sends_the_sources_first_then_pieces_then_the_citations(client):
    chunks = list(client.chat.completions.create(
        model="legalrag", stream=True, messages=[{"role": "user", "content": QUESTION}]))
    first = chunks[0]
    assert first.model_extra["legalrag"]["sources"][0]["citation"] == "《劳动合同法》第十九条"
    assert not first.choices[0].delta.content
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert len(pieces) >= 3 and all(pieces)  # the answer arrives piece by piece
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert "citations" in last.model_extra["legalrag"]
    assert all("legalrag" not in (c.model_extra or {}) for c in chunks[1:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.endswith(DISCLAIMER)


def test_a_follow_up_is_rewritten_with_the_earlier_question(client):
    r = client.chat.completions.create(model="legalrag", messages=[
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": "公司辞退员工要给经济补偿吗？"},
        {"role": "assistant", "content": "……"},
        {"role": "user", "content": [{"type": "text", "text": "那如果是试用期呢？"}]}])
    rewritten = r.model_extra["legalrag"]["rewritten_query"]
    assert rewritten == "公司辞退员工要给经济补偿吗；如果是试用期"


def test_abstaining_is_reported(client):
    bread = [{"role": "user", "content": "如何烤制法式面包？"}]
    r = client.chat.completions.create(model="legalrag", stream=False, messages=bread)
    assert r.model_extra["legalrag"]["abstained"]
    assert r.choices[0].message.content.startswith(ABSTAIN_TEXT)
    streamed = list(client.chat.completions.create(model="legalrag", stream=True,
                                                   messages=bread))
    assert streamed[0].model_extra["legalrag"]["abstained"]
    assert "".join(c.choices[0].delta.content or "" for c in streamed).startswith(ABSTAIN_TEXT)


def test_models_lists_legalrag(client):
    assert [m.id for m in client.models.list()] == ["legalrag"]


def test_bad_requests_get_400_with_a_message_and_a_fix(client, server):
    import openai

    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="legalrag", messages=[])
    assert "messages" in e.value.body["message"] and e.value.body["fix"]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="legalrag",
                                       messages=[{"role": "user", "content": "  "}])
    assert "请输入一个法律问题" in e.value.body["message"]
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert "/v1/models" in e.value.body["fix"]

    url = server.url + "v1/chat/completions"
    status, body = post(url, b'{"messages": [{"role": "user", "content": "x"}')  # cut short
    assert status == 400 and body["error"]["code"] == "invalid_json"
    assert "JSON" in body["error"]["message"] and body["error"]["fix"]
    status, body = post(url, json.dumps({"messages": [{"role": "user", "content": QUESTION}],
                                         "k": "five"}).encode())
    assert status == 400 and body["error"]["param"] == "k" and "整数" in body["error"]["message"]
    status, body = post(url, json.dumps({"messages": [{"role": "user", "content": QUESTION}],
                                         "k": True}).encode())
    assert status == 400 and body["error"]["param"] == "k"
    status, body = post(url, json.dumps({"messages": [{"role": "assistant", "content": "x"}]})
                        .encode())
    assert status == 400 and "最后一条消息必须是用户的问题" in body["error"]["message"]
    status, body = post(url, b"[1, 2]")
    assert status == 400 and "JSON 对象" in body["error"]["message"]
    status, body = post(url, b"{" + b" " * 300_000 + b"}")
    assert status == 413 and "api_max_request_bytes" in body["error"]["fix"]


def test_retrieve_returns_ranked_hits_with_scores(server):
    status, body = post(server.url + "v1/retrieve", json.dumps(
        {"query": "劳动合同法第十九条", "k": 3, "mode": "bm25"}).encode())
    assert status == 200, body
    assert (body["k"], body["mode"], len(body["hits"])) == (3, "bm25", 3)
    top = body["hits"][0]
    assert (top["law"], top["label"], top["rank"]) == ("劳动合同法", "第十九条", 1)
    assert top["score"] >= body["hits"][1]["score"]
    status, body = post(server.url + "v1/retrieve", json.dumps({"query": "x", "mode": "x"})
                        .encode())
    assert status == 400 and body["error"]["param"] == "mode"


def test_check_labels_the_citations_of_any_text(server):
    text = "依据《劳动合同法》第十九条，另见《合同法》第五十二条和《劳动合同法》第九百条。"
    status, body = post(server.url + "v1/check", json.dumps({"text": text}).encode())
    assert status == 200, body
    got = [(c["citation"], c["label"]) for c in body["citations"]]
    assert got == [("《劳动合同法》第十九条", IN_FORCE), ("《合同法》第五十二条", REPEALED),
                   ("《劳动合同法》第九百条", INVENTED)]
    assert body["labels"] == {IN_FORCE: 1, REPEALED: 1, INVENTED: 1}
    assert body["citations"][1]["label_name"] == "已失效"


# ---------------------------------------------------------------- auth


def test_with_login_the_api_needs_the_bearer_token(small_settings, smol_model, tmp_path):
    import openai
    from openai import OpenAI

    srv = serve(small_settings, smol_model, tmp_path, auth_user="anna",
                auth_password="s3cret-pw", api_token="tok-123")
    try:
        base = srv.url + "v1"
        for key in ("wrong", "s3cret-pw"):
            with pytest.raises(openai.AuthenticationError) as e:
                OpenAI(base_url=base, api_key=key, max_retries=0).models.list()
            assert e.value.status_code == 401 and e.value.body["message"] == "API 令牌不正确"
        status, body = post(base + "/chat/completions", json.dumps(
            {"messages": [{"role": "user", "content": QUESTION}]}).encode())
        assert status == 401 and body["error"]["message"] == "缺少 API 令牌"
        assert "Authorization: Bearer" in body["error"]["fix"]
        for route in ("/retrieve", "/check"):
            assert post(base + route, b'{"query": "x", "text": "x"}')[0] == 401
        ok = OpenAI(base_url=base, api_key="tok-123", max_retries=0)
        assert [m.id for m in ok.models.list()] == ["legalrag"]
    finally:
        srv.close()


# ---------------------------------------------------------------- pure parsing (fast)


@pytest.mark.fast
def test_parse_chat_reads_the_question_history_and_options():
    from legalrag.web.api import parse_chat

    req = parse_chat({"model": "legalrag", "stream": True, "k": 3, "mode": "bm25",
                      "max_tokens": 100, "messages": [
                          {"role": "user", "content": "公司辞退员工要给经济补偿吗？"},
                          {"role": "assistant", "content": "要。"},
                          {"role": "user", "content": " 那如果是试用期呢？ "}]}, Settings())
    assert req.question == "那如果是试用期呢？" and req.stream
    assert [t.question for t in req.history] == ["公司辞退员工要给经济补偿吗？"]
    assert (req.options.k, req.options.mode, req.options.max_tokens) == (3, "bm25", 100)


@pytest.mark.fast
@pytest.mark.parametrize("body, status, param", [
    ({}, 400, "messages"),
    ({"messages": "hi"}, 400, "messages"),
    ({"messages": [{"content": "hi"}]}, 400, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400, "messages"),
    ({"messages": [{"role": "user", "content": "试用期多久"}], "stream": "yes"}, 400, "stream"),
    ({"messages": [{"role": "user", "content": "试用期多久"}], "k": 21}, 400, "k"),
    ({"messages": [{"role": "user", "content": "试用期多久"}], "max_tokens": 5}, 400, "max_tokens"),
    ({"messages": [{"role": "user", "content": "试用期多久"}], "n": 2}, 400, "n"),
    ({"messages": [{"role": "user", "content": "试用期多久"}], "model": "x"}, 404, "model"),
])
def test_parse_chat_refuses_what_it_cannot_answer(body, status, param):
    from legalrag.web.api import ApiError, parse_chat

    with pytest.raises(ApiError) as e:
        parse_chat(body, Settings())
    assert (e.value.status, e.value.param) == (status, param)
    assert e.value.message and e.value.fix


@pytest.mark.fast
def test_auth_rules():
    from legalrag.web.api import ApiError, check_auth

    check_auth(Settings(), None)  # no login, no token: open (the server binds 127.0.0.1)
    token = Settings(api_token="t0k")
    check_auth(token, "Bearer t0k")
    for header in (None, "", "Bearer", "Basic t0k", "Bearer t0", "Bearer t0kk"):
        with pytest.raises(ApiError) as e:
            check_auth(token, header)
        assert e.value.status == 401
    login = Settings(auth_user="a", auth_password="b")  # login without a token: closed
    with pytest.raises(ApiError) as e:
        check_auth(login, "Bearer b")
    assert "api_token" in e.value.fix


def test_a_client_that_leaves_mid_stream_frees_the_model(server, client):
    """The stream is closed after its first piece; the model's turn must be free again for
    the next request (not held until the abandoned answer reaches max_tokens)."""
    import httpx

    body = {"model": "legalrag", "stream": True, "max_tokens": 4000,
            "messages": [{"role": "user", "content": QUESTION}]}
    with httpx.stream("POST", server.url + "v1/chat/completions", json=body,
                      timeout=120) as r:
        for line in r.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                break  # the first piece of the answer: leave
    model = server.chat._model
    deadline = time.monotonic() + 10  # a held turn would write on for a minute or more
    while model.waiting() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert model.waiting() == 0
    r = client.chat.completions.create(model="legalrag",
                                       messages=[{"role": "user", "content": QUESTION}])
    assert r.choices[0].message.content.endswith(DISCLAIMER)
