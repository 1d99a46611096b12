"""The UI's callbacks in process, with real components: the small real index (real
embeddings, FAISS, BM25), the SmolLM2 GGUF through llama.cpp, real files on disk.

chat.ChatService.respond is what the chat tab runs; kb.KnowledgeBase is what the
knowledge-base tab runs; views renders both. Nothing here imports gradio except the last
test, which builds the Blocks app to check the wiring.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from legalrag.answer.assistant import DEFAULT_PREFILL_TPS, Answer, Timings, compose
from legalrag.answer.check import CorpusFacts, check_answer
from legalrag.answer.prompt import Source
from legalrag.errors import IndexBusyError, LegalRagError
from legalrag.index.corpus import USER_CATEGORY, CorpusError
from legalrag.index.store import IndexStore
from legalrag.records import Hit
from legalrag.retrieval.live import LiveRetriever
from legalrag.vocab import LABELS, QUOTED, VERIFIED
from legalrag.web.chat import ChatService
from legalrag.web.kb import KnowledgeBase
from legalrag.web.session import ChatOptions, ChatSession
from legalrag.web.startup import index_state, start_update, wait_until_live
from legalrag.web.uploads import Upload, safe_name
from legalrag.web.views import DENSE_BUILDING, render_answer, render_chat_notice, render_plan

STATUTE = """# 星河市古树名木保护条例

第一条 为了保护古树名木，制定本条例。

第二条 树龄在一百年以上的树木为古树，由园林绿化主管部门建立档案。

第三条 禁止在古树名木保护范围内挖坑取土、倾倒有害废渣。
"""


@pytest.fixture(scope="session")
def smol():
    """SmolLM2-135M through llama.cpp: a real model, fast enough for every test. One
    thread: on a busy 2-core machine llama.cpp's threads wait on each other at every
    barrier, and one thread is 2-3x faster than two."""
    from legalrag.answer.llm import LlamaCppModel
    from legalrag.answer.modelfile import smollm2_path

    return LlamaCppModel(smollm2_path(), n_ctx=4096, threads=1, seed=7)


def fast(settings, **changes):
    """Settings for quick answers: short answers from few source tokens (prefill dominates
    the time of a small model on a busy 2-core machine)."""
    return replace(settings, llm_max_tokens=24, answer_source_tokens=250, llm_threads=1,
                   **changes)


@contextlib.contextmanager
def another_user_answering(model):
    """Another request holds the model's turn (in its own thread) until the block ends."""
    busy, release = threading.Event(), threading.Event()

    def other_user() -> None:
        with model.queue.turn():
            busy.set()
            release.wait(60)

    t = threading.Thread(target=other_user)
    t.start()
    busy.wait(10)
    try:
        yield
    finally:
        release.set()
        t.join()


@pytest.fixture(scope="module")
def service(small_settings, smol):
    return ChatService(fast(small_settings), model=smol)


@pytest.fixture
def kb_settings(small_settings, tmp_path):
    """A private copy of the small corpus and its index: these tests change both."""
    shutil.copytree(small_settings.corpus_dir, tmp_path / "corpus")
    shutil.copytree(small_settings.index_dir, tmp_path / "indexes")
    return fast(small_settings, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "indexes")


@pytest.fixture
def kb(kb_settings):
    return KnowledgeBase(kb_settings, LiveRetriever(kb_settings))


def upload(tmp_path: Path, name: str, data: bytes | str) -> Upload:
    """A file as Gradio hands it over: stored under its own name in a cache folder."""
    folder = tmp_path / "gradio-cache" / str(len(list((tmp_path).glob("gradio-cache/*"))))
    folder.mkdir(parents=True)
    path = folder / "upload.bin"
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Upload(name, path)


def corpus_state(settings) -> dict[str, bytes]:
    root = Path(settings.corpus_dir)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file()}


def last_reply(view) -> str:
    return view.messages[-1]["content"]


# ---------------------------------------------------------------- chat


def test_warm_up_leaves_the_first_question_nothing_to_load(small_settings):
    """At launch the chat loads the models and reads the prompt prefix every answer
    shares, so the first question does not do it on its own clock."""
    from legalrag.answer.llm import LlamaCppModel
    from legalrag.answer.modelfile import smollm2_path

    model = LlamaCppModel(smollm2_path(), n_ctx=4096, threads=1, seed=7)  # nothing read yet
    chat = ChatService(fast(small_settings), model=model)
    assistant, _ = chat.assistant(ChatOptions.defaults(chat.settings))
    assert not assistant._prefix_read and assistant.prefill_tps == DEFAULT_PREFILL_TPS
    chat.warm_up()
    # read, and timed: the first answer's read limit uses this machine's speed
    assert assistant._prefix_read and assistant.prefill_tps != DEFAULT_PREFILL_TPS


def test_a_question_during_the_warm_up_waits_for_it_and_is_not_told_it_is_queued(
        small_settings):
    """A question asked while the launch's warm-up still reads the prompt prefix is not
    told a question is ahead of it (the warm-up is none), and once the prefix is read it
    shows 正在阅读 like any question."""
    import time

    from legalrag.answer.assistant import Queued, Reading, Sources
    from legalrag.answer.llm import LlamaCppModel
    from legalrag.answer.modelfile import smollm2_path

    model = LlamaCppModel(smollm2_path(), n_ctx=4096, threads=1, seed=7)
    chat = ChatService(fast(small_settings), model=model)
    assistant, _ = chat.assistant(ChatOptions.defaults(chat.settings))
    events: list = []

    def ask() -> None:
        events.extend(assistant.stream("劳动合同法第十九条规定的试用期最长多久？"))

    with model.queue.turn():  # the model is busy: the warm-up has to wait for its turn
        warm = threading.Thread(target=chat.warm_up)
        warm.start()
        while not assistant._prefix_read:  # the warm-up has started on the prefix
            time.sleep(0.01)
        question = threading.Thread(target=ask)
        question.start()
        while not any(isinstance(e, Sources) for e in events):
            time.sleep(0.01)
        time.sleep(0.5)
        assert not any(isinstance(e, Queued | Reading) for e in events), events
    warm.join(60)
    question.join(120)
    kinds = [type(e).__name__ for e in events]
    assert "Queued" not in kinds and "Reading" in kinds and kinds[-1] == "Final", kinds


def test_sources_first_then_tokens_then_the_checked_answer(service):
    session = ChatSession()
    views = list(service.respond(session, "劳动合同法第十九条规定的试用期最长多久？"))
    ex = session.exchanges[0]
    assert ex.state == "done" and ex.answer is not None and not ex.answer.abstained
    # 1: the question at once; 2: sources, no answer text yet; then tokens; then checked.
    assert "正在检索" in last_reply(views[0]) and "lr-src" not in views[0].sources
    assert 'id="lr-t1-h1"' in views[1].sources and "已检索到 5 条相关条文" in last_reply(views[1])
    assert "劳动合同法 › 第二章 劳动合同的订立 › 第十九条" in views[1].sources
    assert "现行有效" in views[1].sources and "试用期不得超过六个月" in views[1].sources
    streamed = [last_reply(v) for v in views if "lr-cursor" in last_reply(v)]
    assert len(streamed) >= 3 and len(set(streamed)) == len(streamed)  # grows piece by piece
    final = last_reply(views[-1])
    assert "lr-cursor" not in final and 'class="lr-disclaimer"' in final
    assert views[-1].messages[0] == {"role": "user",
                                     "content": "劳动合同法第十九条规定的试用期最长多久？"}


def test_follow_up_shows_the_rewritten_query(service):
    session = ChatSession()
    list(service.respond(session, "公司辞退员工要给经济补偿吗？"))
    view = list(service.respond(session, "那如果是试用期呢？"))[-1]
    assert "检索用语（结合上文改写）：公司辞退员工要给经济补偿吗；如果是试用期" in last_reply(view)
    assert "检索用语：公司辞退员工要给经济补偿吗；如果是试用期" in view.sources
    # The earlier question's sources stay reachable, folded; the latest is open.
    assert view.sources.index('id="lr-t2-h1"') < view.sources.index("<details")
    assert 'id="lr-t1-h1"' in view.sources
    assert len(view.messages) == 4


def test_a_cited_article_the_corpus_lacks_is_said_above_the_answer(service):
    """The note comes with the sources, before the model's words, stays on the checked
    answer once, and survives the exchange's record (web/history.py)."""
    from legalrag.web.history import exchange_from_dict, exchange_to_dict

    session = ChatSession()
    views = list(service.respond(session, "《劳动合同法》第九百条规定的试用期最长多久？"))
    note = '<div class="lr-premise">请注意：法库中查不到问题里的《劳动合同法》第九百条'
    with_sources = next(v for v in views if 'id="lr-t1-h1"' in v.sources)
    assert note in last_reply(with_sources)
    final = last_reply(views[-1])
    assert final.count(note) == 1 and final.index(note) < final.index('class="lr-answer"')
    reopened = exchange_from_dict(json.loads(json.dumps(exchange_to_dict(session.exchanges[0]))))
    assert reopened.premise == session.exchanges[0].premise != ()
    assert "lr-premise" not in last_reply(list(service.respond(session, "试用期最长多久？"))[-1])


def test_abstaining_looks_different_and_links_the_candidates(service):
    session = ChatSession()
    view = list(service.respond(session, "如何烤制法式面包？"))[-1]
    reply = last_reply(view)
    assert session.exchanges[0].answer.abstained
    assert reply.startswith('<div class="lr-abstain"><div class="lr-abstain-title">未作回答</div>')
    assert 'href="#lr-t1-h1"' in reply and 'id="lr-t1-h1"' in view.sources


def test_errors_are_messages_and_the_history_stays(service, small_settings):
    session = ChatSession()
    list(service.respond(session, "劳动合同法第十九条是什么？"))
    cases = [
        ("", ChatOptions(), "请输入一个法律问题"),
        ("   \n ", ChatOptions(), "请输入一个法律问题"),
        ("试" * 20_000, ChatOptions(), "问题太长（20,000 字，上限 1,000 字）"),
        ("试用期\x00多久", ChatOptions(), "控制字符"),
        ("How long can probation last?", ChatOptions(), "Please ask in Chinese"),
        (None, ChatOptions(), "问题必须是文字"),
        ("试用期多久", ChatOptions(k=0), "来源数量 0 超出范围"),
        ("试用期多久", ChatOptions(mode="telepathy"), "未知的检索方式"),
    ]
    for question, options, expected in cases:
        view = list(service.respond(session, question, options))[-1]
        assert expected in last_reply(view)
        assert 'class="lr-error"' in last_reply(view)
    assert len(session.history()) == 1  # the answered question, still there for follow-ups
    assert len(view.messages) == 2 * (1 + len(cases))
    assert "（共 20,000 字）" in view.messages[6]["content"]  # a huge paste is not echoed whole
    # and the session goes on normally
    view = list(service.respond(session, "那如果是试用期呢？"))[-1]
    assert "检索用语" in last_reply(view) and len(session.history()) == 2


def test_a_model_that_cannot_load_is_a_message_and_sources_still_show(small_settings):
    settings = fast(small_settings, llm_model_path=str(Path("/nonexistent/model.gguf")))
    session = ChatSession()
    view = list(ChatService(settings).respond(session, "劳动合同法第十九条是什么？"))[-1]
    assert "回答模型无法使用" in last_reply(view) and "does not exist" in last_reply(view)
    assert "劳动合同法 › 第二章 劳动合同的订立 › 第十九条" in view.sources


def test_a_missing_index_is_a_message(small_settings, tmp_path):
    settings = replace(small_settings, index_dir=tmp_path / "nothing-here")
    view = list(ChatService(settings).respond(ChatSession(), "试用期多久？"))[-1]
    assert "出错了：no index in" in last_reply(view)


def test_a_second_user_sees_their_place_in_the_queue(service, smol):
    """Behind another user's answer the bubble says 排队中 with the sources beside it for
    as long as that answer holds the model, then 正在阅读 when the model starts on this
    question, then its text."""
    import time

    session = ChatSession()
    with another_user_answering(smol):
        views = service.respond(session, "劳动合同法第十九条是什么？")
        for view in views:
            if session.exchanges[0].state == "queued":
                assert "排队中：前面还有 1 个问题正在由模型回答" in last_reply(view)
                assert 'id="lr-t1-h1"' in view.sources  # sources while waiting
                break
        else:
            pytest.fail("no queue notice")
        time.sleep(0.5)  # the other answer still holds the model: nothing is read yet
        assert session.exchanges[0].state == "queued" and session.exchanges[0].reading is None
    shown = [(session.exchanges[0].state, last_reply(v)) for v in views]
    states = [state for state, _ in shown]
    assert states[-1] == "done" and "lr-disclaimer" in shown[-1][1]
    assert "queued" not in states, states
    reading = [reply for state, reply in shown if state == "waiting"]
    assert reading and "正在阅读 " in reading[0] and "排队中" not in reading[0]
    assert states.index("waiting") < states.index("writing"), states


def test_stopping_an_answer_frees_the_model(service, smol):
    session = ChatSession()
    views = service.respond(session, "劳动合同法第十九条是什么？")
    for _ in views:
        if session.exchanges[0].state == "writing":
            break
    views.close()  # what Gradio does when the user presses 停止
    assert session.exchanges[0].state == "stopped" and smol.waiting() == 0
    assert "（已停止）" in service.view(session).messages[-1]["content"]
    # The stopped question is still the topic: a follow-up leans on it (a browser session
    # searched 那如果是公司不续签呢？ alone after 停止).
    view = list(service.respond(session, "那如果是试用期呢？"))[-1]  # the model serves it
    assert session.exchanges[1].state == "done"
    assert "检索用语（结合上文改写）：劳动合同法第十九条是什么；如果是试用期" in last_reply(view)


def test_stop_reaches_a_model_still_reading_or_waiting(small_settings, smol):
    """ChatService.stop (the 停止 button) from another thread: the bubble says 已停止 at
    once, the answer's own stream ends without a model token, and the model takes the
    next question. First while the model reads a long prompt, then while it is queued."""
    service = ChatService(replace(small_settings, llm_max_tokens=24, llm_threads=1,
                                  answer_design="articles", answer_source_tokens=2000,
                                  answer_top_k=10), model=smol)
    session = ChatSession()
    views = service.respond(session, "公司拖欠工资三个月，我可以辞职并要求经济补偿吗？")
    for view in views:
        if session.exchanges[0].reading is not None:
            assert "正在阅读 " in last_reply(view) and " 秒后开始作答" in last_reply(view)
            break
    stopper = threading.Timer(0.3, service.stop, [session])  # the model is reading now
    stopper.start()
    rest = list(views)
    stopper.join()
    ex = session.exchanges[0]
    assert ex.state == "stopped" and ex.text == "" and ex.answer is None
    assert "（已停止）" in last_reply(rest[-1]) and smol.waiting() == 0
    # Queued behind another user: stopping leaves the line at once.
    with another_user_answering(smol):
        views = service.respond(session, "劳动合同法第十九条是什么？")
        for _ in views:
            if session.exchanges[1].state == "queued":
                break
        service.stop(session)
        list(views)  # ends while the other user still holds the model
        assert session.exchanges[1].state == "stopped" and smol.waiting() == 1
    list(service.respond(session, "劳动法第三十六条是什么？"))
    assert session.exchanges[2].state == "done"


def test_settings_change_sources_mode_versions_and_length(service):
    session = ChatSession()
    list(service.respond(session, "公司法第一条", ChatOptions(k=2, mode="bm25", max_tokens=16)))
    ex = session.exchanges[0]
    assert len(ex.hits) == 2 and all(set(h.ranks) <= {"lookup", "bm25"} for h in ex.hits)
    assert ex.answer.timings.completion_tokens <= 16
    assert all(h.article.in_force for h in ex.hits) and ex.hits[0].article.version == "2023-12-29"
    list(service.respond(session, "公司法第一条", ChatOptions(k=3, include_old=True)))
    old = [h for h in session.exchanges[1].hits if not h.article.in_force]
    assert old and old[0].article.version == "2018-10-26"
    assert "非现行有效（旧版本或已失效）" in service.view(session).sources


def test_while_dense_builds_the_chat_answers_from_bm25_and_says_so(small_settings, smol,
                                                                    tmp_path):
    """The first launch: build_index publishes the sparse part, then embeds. The chat is
    asked a question at the moment embedding starts (inside the build's progress hook)."""
    from legalrag.index.build import build_index

    corpus = tmp_path / "corpus"
    (corpus / "社会法").mkdir(parents=True)
    shutil.copy2(Path(small_settings.corpus_dir) / "社会法/劳动法(2018-12-29).md",
                 corpus / "社会法")
    settings = fast(small_settings, corpus_dir=corpus, index_dir=tmp_path / "indexes")
    live = LiveRetriever(settings)
    kb = KnowledgeBase(settings, live)
    chat = ChatService(settings, live, smol)
    seen = {}

    def progress(stage: str, total: int):
        if stage == "embed":
            session = ChatSession()
            seen["view"] = list(chat.respond(session, "劳动法第三十六条"))[-1]
            seen["parts"] = set(live.get().parts)
            seen["notice"] = render_chat_notice(kb.status())
        return lambda n: None

    build_index(settings, progress=progress)
    assert seen["parts"] == {"lookup", "bm25"}
    reply = last_reply(seen["view"])
    assert DENSE_BUILDING in reply and "lr-disclaimer" in reply
    assert DENSE_BUILDING in seen["notice"]
    assert "dense" in live.get().parts or _wait_dense(live)
    assert DENSE_BUILDING not in render_chat_notice(kb.status())


def test_an_index_from_another_model_is_rebuilt_at_start_sparse_first(small_settings, smol,
                                                                      tmp_path):
    """After an upgrade that changes the embedding model, `start.sh` must still just work:
    the start rebuilds, serving BM25 within the first (sparse) build."""
    from legalrag.index.build import build_index

    corpus = tmp_path / "corpus"
    (corpus / "社会法").mkdir(parents=True)
    shutil.copy2(Path(small_settings.corpus_dir) / "社会法/劳动法(2018-12-29).md",
                 corpus / "社会法")
    settings = fast(small_settings, corpus_dir=corpus, index_dir=tmp_path / "indexes")
    live = LiveRetriever(settings)
    kb = KnowledgeBase(settings, live)
    assert index_state(settings) == "missing"
    build_index(settings)
    assert index_state(settings) == "current"
    old = live.store.current_name()
    manifest = live.store.current() / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["embedding"]["fingerprint"] = "another-model"
    manifest.write_text(json.dumps(data), encoding="utf-8")
    assert index_state(settings) == "incompatible"
    with pytest.raises(LegalRagError, match="another-model"):
        live.get()

    thread = start_update(settings, kb.jobs)
    assert wait_until_live(live.store, thread, since=old)
    session = ChatSession()
    list(ChatService(settings, live, smol).respond(session, "劳动法第三十六条"))
    assert session.exchanges[0].state == "done"
    thread.join(120)
    assert index_state(settings) == "current" and "dense" in live.store.current().joinpath(
        "manifest.json").read_text(encoding="utf-8")
    assert "重建索引（与当前配置不符）完成" in kb.status()["last_message"]


def _wait_dense(live: LiveRetriever) -> bool:
    import time

    for _ in range(20):
        if "dense" in live.get().parts:
            return True
        time.sleep(0.2)
    return False


def test_one_log_line_per_question_without_the_question(small_settings, smol, tmp_path):
    log_file = tmp_path / "questions.jsonl"
    settings = fast(small_settings, log_file=str(log_file))
    service = ChatService(settings, model=smol)
    session = ChatSession()
    list(service.respond(session, "劳动合同法第十九条是什么？"))
    list(service.respond(session, ""))
    for h in logging.getLogger("legalrag.questions").handlers:
        h.flush()
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["outcome"] == "answered" and first["mode"] == "hybrid" and first["hits"] == 5
    assert first["sources"] >= 1 and first["timings"]["retrieval_ms"] > 0
    assert set(first["citations"]) <= set(LABELS)
    assert second["outcome"] == "error"
    assert "劳动合同法" not in log_file.read_text(encoding="utf-8")

    service = ChatService(replace(settings, log_questions=True), model=smol)
    list(service.respond(ChatSession(), "劳动法第三十六条是什么？"))
    for h in logging.getLogger("legalrag.questions").handlers:
        h.flush()
    assert json.loads(log_file.read_text(encoding="utf-8").splitlines()[-1])["question"] == \
        "劳动法第三十六条是什么？"


# ---------------------------------------------------------------- rendering


def test_a_sentence_that_cites_nothing_leaves_the_answer_for_a_fold(small_index):
    """The conclusion after a ✓ sentence cites nothing, and two reviewers found nearly half
    of such sentences wrong (a browser session: 因此，您不能要求三倍赔偿 under the quote
    that grants it). It is cut out of the answer, with its 。, and shown after it in a
    folded 模型的推断 section with the warning, so the ✓ is not read as covering it and a
    wrong conclusion is not the answer's last line."""
    a19 = small_index.lookup("劳动合同法", 19)[0]
    hits = (Hit(a19, 1.0, 1),)
    sources = (Source(1, a19, a19.text, False),)
    raw = ("根据《劳动合同法》第十九条，试用期不得超过六个月。"
           "因此，公司可以约定一年的试用期。")
    citations = tuple(check_answer(raw, [a19], CorpusFacts.from_articles(small_index.articles)))
    text, notes = compose(raw, citations, sources=[a19])
    answer = Answer("q", "q", hits, sources, text, raw, citations, False,
                    Timings(1.0, 2.0, 3.0), "m", notes)
    assert answer.uncited == [(raw.index("因此"), len(raw) - 1)]
    html = render_answer(answer, turn=1)
    body, fold = html.split('<details class="lr-unchecked">')
    assert "因此" not in body and "试用期不得超过六个月。" in body
    assert "lr-badge lr-verified" in body  # the first sentence keeps its ✓
    assert fold.startswith("<summary>模型的推断（1句，未引条文，未经核实）")
    assert "近半数与所引条文或案情不符" in fold and "因此，公司可以约定一年的试用期。</li>" in fold
    assert "已移到回答之后的“模型的推断”中" in html  # the note under the answer
    # the text form (CLI, API, export) lists it after the answer, under the same heading
    head, section = text.split("模型的推断（1句，未引条文，未经核实）：")
    assert "因此" not in head and "- 因此，公司可以约定一年的试用期。" in section


def test_a_second_quoted_provision_is_headed_as_related(small_index):
    """The first quoted paragraph is the basis (依据), a second one from another source is
    headed 另见; both link to their cards."""
    from legalrag.answer.provision import split_passages
    from legalrag.web.views import render_provision

    a19, a20 = (small_index.lookup("劳动合同法", n)[0] for n in (19, 20))
    hits = (Hit(a19, 1.0, 1), Hit(a20, 0.9, 2))
    first, second = (render_provision(split_passages(a)[0], hits, 3, i == 0)
                     for i, a in enumerate((a19, a20)))
    assert '<div class="lr-provision-head">依据 <a class="lr-cite" href="#' in first
    assert '<div class="lr-provision-head">另见 <a class="lr-cite" href="#' in second
    assert "《劳动合同法》第二十条</a> 原文：" in second


def test_a_quoted_provision_marks_what_it_leaves_out(small_index):
    """Lines the article has between the quoted ones are a …… line of the quote, as in
    the answer's text; adjacent lines get none."""
    from legalrag.answer.provision import GAP, split_passages
    from legalrag.web.views import render_provision

    a17 = small_index.lookup("劳动合同法", 17)[0]  # 第二款 refers to 前款, which lists items
    a24 = small_index.lookup("劳动合同法", 24)[0]  # 第二款 refers to a 前款 without items
    hits = (Hit(a17, 1.0, 1), Hit(a24, 0.9, 2))
    p17, p24 = (next(p for p in split_passages(a) if p.paragraph == 2) for a in (a17, a24))
    html17, html24 = render_provision(p17, hits, 1), render_provision(p24, hits, 1, False)
    assert f"<p>{GAP}</p>" in html17 and "第十七条第一款、第二款</a> 原文：" in html17
    assert html17.index(p17.before[:10]) < html17.index(GAP) < html17.index(p17.text[:10])
    assert GAP not in html24 and "第二十四条第一款、第二款</a> 原文：" in html24


def test_a_verified_sentence_that_leaves_out_the_proviso_shows_it():
    """A ✓ on a rule copied without its 但是 keeps the ✓ and gets a 另有例外 badge whose
    hover text is the article's own proviso."""
    from legalrag.records import Article

    a = Article("中华人民共和国民法典", "民法典", "法律", "民法商法", (), 1248, 0,
                "第一千二百四十八条", "动物园的动物造成他人损害的，动物园应当承担侵权责任；"
                "但是，能够证明尽到管理职责的，不承担侵权责任。", "2021-01-01", True,
                "民法典.md", 1)
    raw = "根据《民法典》第一千二百四十八条，动物园的动物造成他人损害的，动物园应当承担侵权责任。"
    citations = tuple(check_answer(raw, [a], CorpusFacts.from_articles([a])))
    text, notes = compose(raw, citations, sources=[a])
    answer = Answer("q", "q", (Hit(a, 1.0, 1),), (Source(1, a, a.text, False),), text, raw,
                    citations, False, Timings(1.0, 2.0, 3.0), "m", notes)
    html = render_answer(answer, turn=2)
    assert ('《民法典》第一千二百四十八条</a><span class="lr-badge lr-verified">✓已核实</span>'
            '<span class="lr-badge lr-proviso" title="所引条文接着规定：“但是，能够证明尽到'
            '管理职责的，不承担侵权责任”；这句话没有写出，请对照原文">另有例外</span>') in html
    assert "所引条文另有例外或但书" in html  # the note


def test_a_reference_inside_a_copied_article_gets_no_tick(small_index):
    """A browser session: 试用期内，除劳动者有本法第三十九条和第四十条第一项、第二项规定的情形
    外，用人单位不得解除劳动合同 (第二十一条, copied) showed ✓已核实 on 本法第三十九条 and
    第四十条第一项, read as "article 39 says this". They are the copied article's own
    references: links to their articles, with no ✓ and no mark."""
    a21, a39, a40 = (small_index.lookup("劳动合同法", n)[0] for n in (21, 39, 40))
    sources = [a39, a21, a40]
    raw = ("根据《劳动合同法》第二十一条，试用期内，除劳动者有本法第三十九条和第四十条第一项、"
           "第二项规定的情形外，用人单位不得解除劳动合同。")
    citations = tuple(check_answer(raw, sources, CorpusFacts.from_articles(small_index.articles)))
    inner = [c for c in citations if c.raw in ("本法第三十九条", "第四十条第一项")]
    assert [(c.label, c.source) for c in inner] == [(QUOTED, 1), (QUOTED, 3)]
    text, notes = compose(raw, citations, sources=sources)
    answer = Answer("q", "q", tuple(Hit(a, 1.0, i) for i, a in enumerate(sources, 1)),
                    tuple(Source(i, a, a.text, False) for i, a in enumerate(sources, 1)),
                    text, raw, citations, False, Timings(1.0, 2.0, 3.0), "m", notes)
    html = render_answer(answer, turn=2)
    assert html.count("✓已核实") == sum(c.label == VERIFIED and c.kind != "passage"
                                      for c in citations) <= 1  # 第二十一条's own at most
    assert '本法第三十九条</a>和' in html and 'data-check="quoted"' in html
    assert "照录的《劳动合同法》第二十一条原文中的引用" in html


def test_a_copy_with_a_word_changed_is_labelled_on_screen():
    """Words copied from a source with one changed (以上 for 以下) are not shown as plain
    text: the whole stretch links to its source with a 引文与条文不符 badge whose hover text
    names the change."""
    from legalrag.records import Article

    a = Article("中华人民共和国刑法", "刑法", "法律", "刑法", (), 264, 0, "第二百六十四条",
                "盗窃公私财物，数额较大的，或者多次盗窃、入户盗窃、携带凶器盗窃、扒窃的，处三年以下"
                "有期徒刑、拘役或者管制，并处或者单处罚金。", "2020-12-26", True, "刑法.md", 1)
    raw = ("盗窃公私财物，数额较大的，或者多次盗窃、入户盗窃、携带凶器盗窃、扒窃的，处三年以上"
           "有期徒刑、拘役或者管制，并处或者单处罚金。")
    citations = tuple(check_answer(raw, [a], CorpusFacts.from_articles([a])))
    text, notes = compose(raw, citations, sources=[a])
    answer = Answer("q", "q", (Hit(a, 1.0, 1),), (Source(1, a, a.text, False),), text, raw,
                    citations, False, Timings(1.0, 2.0, 3.0), "m", notes)
    html = render_answer(answer, turn=2)
    assert 'data-check="misquoted"' in html and "原文为“以下”，此处为“以上”" in html
    assert html.count('<span class="lr-badge lr-misquoted">') == 1
    assert "照抄条文时改动了原文的字词" in html  # the note


def test_every_citation_is_linked_and_labelled(small_index):
    picked = [("劳动合同法", 19), ("劳动合同法", 20), ("劳动合同法", 21), ("劳动合同法", 70),
              ("劳动法", 21)]
    hits = tuple(Hit(small_index.lookup(law, n)[0], 1.0 / r, r)
                 for r, (law, n) in enumerate(picked, 1))
    sources = tuple(Source(n, h.article, h.article.text, False) for n, h in enumerate(hits[:3], 1))
    raw = ("根据《劳动合同法》第十九条[1]，试用期最长六个月。《劳动法》第二十一条也有规定。"
           "另见《劳动合同法》第九十九条和《合同法》第三十九条[9]。<script>x</script>")
    citations = tuple(check_answer(raw, [s.article for s in sources],
                                   CorpusFacts.from_articles(small_index.articles)))
    text, notes = compose(raw, citations)
    answer = Answer("q", "q", hits, sources, text, raw, citations, False,
                    Timings(1.0, 2.0, 3.0), "m", notes)
    html = render_answer(answer, turn=3)
    assert ('<a class="lr-cite lr-verified" title="已核实：在所给来源中（有所引条文为据；'
            '条文中的例外、但书未必都已写出，请对照原文）" data-check="verified" '
            'href="#lr-t3-h1">《劳动合同法》第十九条</a><span class="lr-badge lr-verified">'
            "✓已核实</span>") in html
    assert ('<a class="lr-cite lr-verified lr-marker" title="已核实：《劳动合同法》第十九条（有所引'
            '条文为据；条文中的例外、但书未必都已写出，请对照原文）" '
            'data-check="verified" href="#lr-t3-h1">&#91;1&#93;</a>，') in html  # no Markdown
    # a real article that was retrieved (rank 5) but not given to the model
    assert ('href="#lr-t3-h5">《劳动法》第二十一条</a><span class="lr-badge lr-not_retrieved">'
            "〔未在检索来源中，请自行核对〕</span>") in html
    assert html.count("但书未必都已写出") == 2  # beside each ✓, and nowhere else
    assert ('<span class="lr-cite lr-invented" '
            'title="法库中无此条文：《劳动合同法》没有第九十九条" data-check="invented">'
            "《劳动合同法》第九十九条</span>"
            '<span class="lr-badge lr-invented">〔⚠法库中无此条文〕</span>') in html
    assert ('data-check="repealed">《合同法》第三十九条</span><span class="lr-badge lr-repealed">'
            "〔⚠已失效〕</span>") in html
    assert ('data-check="invalid">&#91;9&#93;</span><span class="lr-badge lr-invalid">'
            "〔⚠引用无效〕</span>") in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>" not in html
    assert "《合同法》已被《民法典》废止（见《民法典》第一千二百六十条）。" in html  # a note
    assert html.endswith('<div class="lr-disclaimer">（以上为法律信息，不构成法律意见；'
                         "具体情况请咨询执业律师。）</div>")


# ---------------------------------------------------------------- knowledge base


def test_safe_names_stay_inside_the_upload_folder():
    assert safe_name("../../etc/某某条例.MD") == "某某条例.md"
    assert safe_name("/etc/passwd.txt") == "passwd.txt"
    assert safe_name("..\\..\\windows\\x.txt") == "x.txt"
    assert safe_name("a/b/../../c.md") == "c.md"
    assert safe_name(".hidden.md") == "hidden.md"
    assert safe_name('条例<1>:"|?*.md') == "条例1.md"
    for bad in ("", "..", "../", "x.pdf", "x.md.exe", ".md", "README.md", "x" * 81 + ".md"):
        with pytest.raises(CorpusError):
            safe_name(bad)


def test_upload_preview_add_ask_remove(kb, kb_settings, smol, tmp_path):
    plan = kb.check_uploads([upload(tmp_path, "星河市古树名木保护条例.md", STATUTE)])
    (check,) = plan.checks
    assert check.ok and check.target == f"{USER_CATEGORY}/星河市古树名木保护条例.md"
    assert (check.title, len(check.articles)) == ("星河市古树名木保护条例", 3)
    assert check.notes == ("新法律《星河市古树名木保护条例》，3 条",)
    assert "第二条</b> 树龄在一百年以上的树木为古树" in render_plan(plan)
    assert not (Path(kb_settings.corpus_dir) / USER_CATEGORY).exists()  # a preview writes nothing

    stages = []
    outcome = kb.add(plan, progress=lambda stage, total: stages.append(stage) or (lambda n: None))
    assert outcome.added == (check.target,)
    assert stages[:2] == ["write", "parse"] and "segment" in stages and "embed" in stages
    assert stages[-1] == "swap"
    written = Path(kb_settings.corpus_dir) / check.target
    assert written.read_text(encoding="utf-8") == STATUTE
    assert not list(written.parent.glob(".*"))  # no temporary files left

    chat = ChatService(kb_settings, kb.live, smol)  # the chat uses the new index at once
    view = list(chat.respond(ChatSession(), "星河市古树名木保护条例第二条规定了什么？"))[-1]
    assert "星河市古树名木保护条例 › 第二条" in view.sources
    assert "树龄在一百年以上的树木为古树" in view.sources
    assert [f.law for f in kb.user_files()] == ["星河市古树名木保护条例"]

    again = kb.check_uploads([upload(tmp_path, "星河市古树名木保护条例.md", STATUTE)])
    assert "法库中已有同名文件" in again.checks[0].problem

    with IndexStore(kb_settings.index_dir).lock():  # an update already running
        with pytest.raises(IndexBusyError):
            kb.remove(check.target)
    assert written.exists() and kb.live.get().lookup("星河市古树名木保护条例", 2)

    kb.remove(check.target)
    assert not written.exists() and not list(written.parent.iterdir())
    assert kb.live.get().lookup("星河市古树名木保护条例", 2) == []


def test_bad_uploads_are_refused_and_change_nothing(kb, kb_settings, tmp_path):
    small = replace(kb_settings, max_upload_bytes=4000)
    kb = KnowledgeBase(small, kb.live)
    link = tmp_path / "link.md"
    link.symlink_to("/etc/hostname")
    uploads = [
        upload(tmp_path, "gbk条例.txt", STATUTE.encode("gbk")),
        upload(tmp_path, "没有条文.md", "# 某某办法\n\n这里只有一段说明，没有条文。\n"),
        upload(tmp_path, "没有标题.md", "第一条 没有标题的条文。\n"),
        upload(tmp_path, "重复条号.md", "# 某某规定\n第一条 甲。\n第一条 乙。\n"),
        upload(tmp_path, "二进制.md", b"# x\n\x00\x01\x02"),
        upload(tmp_path, "空文件.md", b""),
        upload(tmp_path, "太大.md", "# 大\n" + "第一条 " + "很长" * 3000),
        upload(tmp_path, "图片.png", b"\x89PNG"),
        Upload("符号链接.md", link),
        upload(tmp_path, "../../../逃逸.md", "# 逃逸条例\n第一条 不得逃逸。\n"),
        upload(tmp_path, "逃逸.md", "# 另一个逃逸条例\n第一条 同名。\n"),
    ]
    before = corpus_state(small)
    current = IndexStore(small.index_dir).current_name()
    plan = kb.check_uploads(uploads)
    problems = [c.problem for c in plan.checks]
    expected = ["不是 UTF-8 编码（可能是 GBK）", "没有找到条文", "缺少标题",
                "条号重复：第一条 已在第 2 行", "二进制文件", "文件是空的", "超过上限 4 KB",
                "只接受 .md 或 .txt", "不是普通文件",
                "", "同一批上传中已有同名文件 逃逸.md"]
    for got, want in zip(problems, expected, strict=True):
        assert (want in got) if want else got == "", (got, want)
    assert plan.checks[9].target == f"{USER_CATEGORY}/逃逸.md"  # the path was dropped
    html = render_plan(plan)
    assert "不能添加" in html and "不会写入任何内容" in html

    refused = replace(plan, checks=plan.rejected)
    with pytest.raises(LegalRagError, match="没有可添加的文件"):
        kb.add(refused)
    assert corpus_state(small) == before
    assert IndexStore(small.index_dir).current_name() == current


def test_duplicates_of_a_law_are_refused_a_new_version_is_explained(kb, tmp_path):
    same = "# 中华人民共和国劳动法\n第一条 为了保护劳动者的合法权益，制定本法。\n"
    plan = kb.check_uploads([upload(tmp_path, "劳动法.md", same),
                             upload(tmp_path, "劳动法(2030-01-01).md", same),
                             upload(tmp_path, "劳动法(2001-01-01).txt", same)])
    dup, newer, older = plan.checks
    assert "法库中已有《劳动法》的同一版本（社会法/劳动法(2018-12-29).md）" in dup.problem
    assert "请在文件名中写明版本日期" in dup.problem
    assert newer.ok and newer.articles[0].in_force and newer.version == "2030-01-01"
    assert "版本 2018-12-29" in newer.notes[0] and "将成为现行有效版本" in newer.notes[0]
    assert older.ok and not older.articles[0].in_force and "历史版本" in older.notes[0]


def test_uploads_never_write_through_symbolic_links(kb, kb_settings, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    plan = kb.check_uploads([upload(tmp_path, "星河市古树名木保护条例.md", STATUTE)])
    assert plan.checks[0].ok
    # a link planted where the file will go, after the preview: not followed, not replaced
    folder = Path(kb_settings.corpus_dir) / USER_CATEGORY
    folder.mkdir()
    (folder / "星河市古树名木保护条例.md").symlink_to(outside / "victim.md")
    with pytest.raises(LegalRagError, match="未覆盖"):
        kb.add(plan)
    assert not (outside / "victim.md").exists()
    assert (folder / "星河市古树名木保护条例.md").is_symlink()
    (folder / "星河市古树名木保护条例.md").unlink()
    # the upload folder itself replaced by a link to somewhere else
    folder.rmdir()
    folder.symlink_to(outside, target_is_directory=True)
    with pytest.raises(LegalRagError, match="符号链接"):
        kb.add(plan)
    assert list(outside.iterdir()) == []


def test_a_failed_update_leaves_corpus_and_index_unchanged(kb, kb_settings, tmp_path):
    plan = kb.check_uploads([upload(tmp_path, "星河市古树名木保护条例.md", STATUTE)])
    before = corpus_state(kb_settings)
    current = IndexStore(kb_settings.index_dir).current_name()
    with IndexStore(kb_settings.index_dir).lock():
        with pytest.raises(IndexBusyError):
            kb.add(plan)
    assert corpus_state(kb_settings) == before
    assert IndexStore(kb_settings.index_dir).current_name() == current
    assert "失败" in kb.status()["last_error"]


def test_national_laws_cannot_be_removed_from_the_ui(kb, kb_settings):
    before = corpus_state(kb_settings)
    national = "社会法/劳动法(2018-12-29).md"
    for source in (national, f"{USER_CATEGORY}/../{national}", "/etc/passwd", "laws.sqlite3"):
        with pytest.raises(LegalRagError, match="只能删除"):
            kb.remove(source)
    assert corpus_state(kb_settings) == before


def test_chat_keeps_answering_during_an_update(kb, kb_settings, smol, tmp_path):
    chat = ChatService(kb_settings, kb.live, smol)
    plan = kb.check_uploads([upload(tmp_path, "星河市古树名木保护条例.md", STATUTE)])
    errors: list[BaseException] = []

    def update() -> None:
        try:
            kb.add(plan)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=update)
    t.start()
    answered = 0
    while t.is_alive():
        session = ChatSession()
        list(chat.respond(session, "劳动法第三十六条是什么？", ChatOptions(max_tokens=16)))
        assert session.exchanges[0].state == "done", session.exchanges[0].error
        answered += 1
    t.join()
    assert not errors and answered >= 1
    session = ChatSession()
    list(chat.respond(session, "星河市古树名木保护条例第三条"))
    assert session.exchanges[0].hits[0].article.law == "星河市古树名木保护条例"


def test_status_reports_the_index(kb, kb_settings):
    st = kb.status()
    assert st["live"] and st["laws"] == 7 and st["dense_live"] and st["job"] is None
    assert {"lookup", "bm25", "dense"} <= set(st["parts"])
    assert st["in_force"] < st["articles"]
    assert index_state(kb_settings) == "current"  # nothing to build when the app starts
    (Path(kb_settings.corpus_dir) / "社会法" / "新规定.md").write_text(STATUTE, encoding="utf-8")
    assert index_state(kb_settings) == "stale"


def test_the_app_wires_up(small_settings, smol):
    from legalrag.web.ui import build_app

    live = LiveRetriever(small_settings)
    demo = build_app(small_settings, ChatService(small_settings, live, smol),
                     KnowledgeBase(small_settings, live))
    names = {d.api_name for d in demo.fns.values() if d.api_name}
    assert {"ask", "add_files", "remove_file"} <= names


def test_start_script_and_cli_register_serve():
    from legalrag.cli import build_parser

    args = build_parser().parse_args(["serve", "--port", "8123", "--host", "0.0.0.0"])
    assert (args.port, args.host) == (8123, "0.0.0.0")
    script = (Path(__file__).resolve().parents[1] / "scripts/start.sh").read_text()
    assert "bash scripts/setup.sh" in script and "app.py" in script
    assert os.access(Path(__file__).resolve().parents[1] / "scripts/start.sh", os.X_OK)
