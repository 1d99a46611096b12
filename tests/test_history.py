"""Conversations kept on the server (web/history.py): real answers from the SmolLM2 GGUF
over the small real index, saved to a real SQLite file and reopened; two writers on one
file at once; and the browser end to end: `legalrag serve` killed mid-answer, started
again, the conversation reopened from the sidebar."""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from legalrag.web.chat import ChatService
from legalrag.web.history import History, new_browser_id, owner_of
from legalrag.web.session import ChatSession

ANNA = "user:anna"
Q19 = "劳动合同法第十九条规定的试用期最长多久？"


@pytest.fixture(scope="module")
def smol_model():
    from legalrag.answer.llm import LlamaCppModel
    from legalrag.answer.modelfile import smollm2_path

    return LlamaCppModel(smollm2_path(), n_ctx=4096, threads=1, seed=7)


@pytest.fixture(scope="module")
def chat(small_settings, smol_model):
    s = replace(small_settings, llm_max_tokens=24, answer_source_tokens=250, llm_threads=1)
    return ChatService(s, model=smol_model)


def ask(history: History, who: str, chat: ChatService, session: ChatSession, q: str):
    return list(history.record(who, session, chat.respond(session, q)))


def test_a_conversation_reopens_as_it_was(chat, tmp_path):
    history = History(tmp_path / "h.sqlite3")
    session = ChatSession()
    ask(history, ANNA, chat, session, "劳动合同法第十九条规定的试用期最长多久？")
    last = ask(history, ANNA, chat, session, "那如果是试用期呢？")[-1]
    assert [e.state for e in session.exchanges] == ["done", "done"]

    listed = history.conversations(ANNA)
    assert [(c.id, c.title, c.questions) for c in listed] == [
        (session.id, "劳动合同法第十九条规定的试用期最长多久？", 2)]
    reopened = History(tmp_path / "h.sqlite3").load(ANNA, session.id)  # a fresh process
    again = chat.view(reopened)
    assert again.messages == last.messages  # answers with their citation labels
    assert again.sources == last.sources  # the sources panel, every card
    assert reopened.exchanges[1].answer.citations == session.exchanges[1].answer.citations
    assert reopened.history() == session.history()  # follow-ups keep working
    ask(history, ANNA, chat, reopened, "劳动法第三十六条是什么？")
    assert history.conversations(ANNA)[0].questions == 3


def test_conversations_belong_to_their_owner(chat, tmp_path):
    history = History(tmp_path / "h.sqlite3")
    mine, theirs = ChatSession(), ChatSession()
    bob = owner_of(None, new_browser_id())
    ask(history, ANNA, chat, mine, "劳动法第三十六条是什么？")
    ask(history, bob, chat, theirs, "如何烤制法式面包？")
    assert [c.id for c in history.conversations(ANNA)] == [mine.id]
    assert history.load(bob, mine.id) is None
    assert not history.delete(bob, mine.id)
    # bob cannot write into anna's conversation by reusing its id either
    stolen = ChatSession(id=mine.id)
    ask(history, bob, chat, stolen, "如何烤制法式面包？")
    assert len(history.load(ANNA, mine.id).exchanges) == 1
    assert history.delete(ANNA, mine.id) and history.conversations(ANNA) == []
    assert history.delete_all(bob) == 1 and history.conversations(bob) == []
    assert owner_of(None, "not-an-id") == "" and owner_of(None, None) == ""
    assert owner_of("anna", "x") == ANNA


def test_an_answer_stopped_midway_reopens_stopped_with_its_sources(chat, tmp_path):
    history = History(tmp_path / "h.sqlite3")
    session = ChatSession()
    views = history.record(ANNA, session, chat.respond(session, "劳动法第三十六条是什么？"))
    for _ in views:
        if session.exchanges[0].state == "writing":
            break
    views.close()  # the user pressed 停止
    ex = history.load(ANNA, session.id).exchanges[0]
    assert ex.state == "stopped" and ex.hits and ex.hits == session.exchanges[0].hits
    assert ex.text and session.exchanges[0].text.startswith(ex.text)
    # the export keeps what was on screen (a browser session found only 未回答 there)
    from legalrag.web.history import export_items

    (item,) = export_items(session)
    assert item.answer is None and item.note == "回答被停止或中断"
    assert session.exchanges[0].text.strip() in item.partial


def test_two_processes_opening_a_new_file_together_both_open(tmp_path):
    """SQLite fails a racing switch to WAL at once ("database is locked"), without its
    busy wait; a user's first tab must not get that error because a second one opened."""
    errors: list[BaseException] = []

    def opener(path: Path) -> None:
        history = History(path)
        try:
            history.conversations("user:a")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            history.close()

    for i in range(150):  # the race is lost about one time in fifteen without the wait
        path = tmp_path / f"h{i}.sqlite3"
        threads = [threading.Thread(target=opener, args=(path,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_two_writers_on_one_file_lose_nothing(tmp_path):
    """Two tabs (or two server processes) saving at once: every exchange is kept."""
    from legalrag.web.session import Exchange

    path = tmp_path / "h.sqlite3"
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        history = History(path)  # its own connection, as another process has
        try:
            for i in range(30):
                session = ChatSession()
                session.exchanges.append(Exchange(1, f"{name} 问题 {i}", state="done",
                                                  text="回答"))
                history.save(f"user:{name}", session, session.exchanges[0])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            history.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = History(path)
    assert len(history.conversations("user:a")) == len(history.conversations("user:b")) == 30
    assert history._read("PRAGMA journal_mode")[0][0] == "wal"


@pytest.mark.browser
def test_a_server_killed_mid_answer_leaves_the_conversation(small_settings, tmp_path,
                                                           monkeypatch):
    import test_browser
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS, App

    from legalrag.answer.modelfile import smollm2_path

    env = dict(LEGALRAG_LLM_MODEL_PATH=str(smollm2_path()), LEGALRAG_LLM_MAX_TOKENS="600",
               LEGALRAG_LLM_THREADS="1", LEGALRAG_ANSWER_SOURCE_TOKENS="300",
               LEGALRAG_DATA_DIR=str(tmp_path / "userdata"))
    app = App(tmp_path / "first", small_settings, **env)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 950}, locale="zh-CN")
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            page.goto(app.url)
            page.wait_for_selector("#lr-question textarea")
            # the browser's id is stored once the page has loaded
            page.wait_for_function("localStorage.getItem('legalrag-owner') !== null")
            page.locator("#lr-question textarea").fill(Q19)
            page.locator("#lr-question textarea").press("Enter")
            page.wait_for_selector("#lr-chat .lr-cursor", timeout=120_000)  # writing
            os.kill(app.proc.pid, signal.SIGKILL)
            app.proc.wait(10)
        finally:
            app.stop()
        # The same address again (local storage belongs to an origin: host and port).
        monkeypatch.setattr(test_browser, "free_port", lambda: app.port)
        again = App(tmp_path / "second", small_settings, **env)
        try:
            page = context.new_page()  # the same browser: its local storage has its id
            page.set_default_timeout(60_000)
            page.goto(again.url)
            page.wait_for_selector("#lr-question textarea")
            toggle = page.locator("#lr-sidebar .toggle-button, .sidebar .toggle-button").first
            toggle.click()
            item = page.locator("#lr-history label", has_text=Q19[:-1])
            item.wait_for()
            item.click()
            page.wait_for_selector("#lr-chat :text('已停止')")
            assert Q19 in page.locator("#lr-chat").inner_text()
            page.wait_for_selector("#lr-sources #lr-t1-h1")
            assert "试用期不得超过六个月" in page.locator("#lr-sources").inner_text()
        finally:
            again.stop()
            browser.close()


@pytest.mark.browser
def test_feedback_and_export_in_the_browser(small_settings, tmp_path):
    """👍 on an answer, a source marked right with a comment, the Markdown export: through
    the page, stored where `legalrag feedback export` reads it."""
    import time

    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS, App

    from legalrag.answer.modelfile import smollm2_path
    from legalrag.web.history import eval_records

    data = tmp_path / "userdata"
    app = App(tmp_path / "srv", small_settings, LEGALRAG_DATA_DIR=str(data),
              LEGALRAG_LLM_MODEL_PATH=str(smollm2_path()), LEGALRAG_LLM_MAX_TOKENS="24",
              LEGALRAG_LLM_THREADS="1", LEGALRAG_ANSWER_SOURCE_TOKENS="300")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 950}, locale="zh-CN")
            page.set_default_timeout(60_000)
            page.goto(app.url)
            page.wait_for_function("localStorage.getItem('legalrag-owner') !== null")
            page.locator("#lr-question textarea").fill(Q19)
            page.locator("#lr-question textarea").press("Enter")
            page.wait_for_selector("#lr-chat .lr-disclaimer", timeout=180_000)
            page.locator('#lr-chat button[aria-label="赞"]').last.click()
            # A second question; the marks below are for the first answer's sources.
            page.locator("#lr-question textarea").fill("劳动法第三十六条是怎么规定的？")
            page.locator("#lr-question textarea").press("Enter")
            page.wait_for_function(
                "document.querySelectorAll('#lr-chat .lr-disclaimer').length === 2",
                timeout=180_000)
            page.locator("#lr-sidebar .toggle-button").first.click()
            page.locator("#lr-history label", has_text=Q19[:-1]).wait_for()
            page.get_by_text("反馈：回答与条文").click()
            turn = page.locator("#lr-feedback-turn input")
            page.wait_for_function("(document.querySelector('#lr-feedback-turn input')"
                                   "?.value || '').startsWith('第 2 问')")  # the latest
            turn.click()
            page.get_by_role("option", name=f"第 1 问：{Q19[:24]}").click()
            page.locator("#lr-feedback-right label", has_text="[1] 《劳动合同法》第十九条").click()
            page.locator("#lr-feedback-comment textarea").fill("第十九条正是答案")
            page.locator("#lr-feedback-submit").click()
            page.wait_for_selector("#lr-history-message :text('已保存对第 1 问的反馈')")
            page.locator("#lr-export-md").click()
            link = page.locator("#lr-export-file a").first
            link.wait_for()
            assert ".md" in page.locator("#lr-export-file").inner_text()
            href = link.get_attribute("href")
            got = page.request.get(href if href.startswith("http") else app.url + href.lstrip("/"))
            md = got.text()
            assert got.ok and f"> {Q19}" in md and "## 附录：所引条文全文" in md
            # the file goes with its conversation: 新对话 hides it (a browser session saw the
            # last conversation's file offered in a new one), and reopening it from the
            # history brings the conversation back without a stale file
            page.get_by_role("button", name="新对话").click()
            page.wait_for_function(
                "document.querySelectorAll('#lr-chat .lr-disclaimer').length === 0")
            page.locator("#lr-export-file").wait_for(state="hidden")
            page.locator("#lr-history label", has_text=Q19[:-1]).click()
            page.wait_for_function(
                "document.querySelectorAll('#lr-chat .lr-disclaimer').length === 2")
            assert page.locator("#lr-export-file").is_hidden()
            # A reload shows the conversation that was on screen, not an empty chat; a
            # follow-up then continues it, and 新对话 then a reload stays empty.
            page.reload()
            page.wait_for_function(
                "document.querySelectorAll('#lr-chat .lr-disclaimer').length === 2")
            chat_text = page.locator("#lr-chat").inner_text()
            assert Q19 in chat_text and "劳动法第三十六条是怎么规定的？" in chat_text
            page.wait_for_selector("#lr-sources #lr-t2-h1")
            page.get_by_role("button", name="新对话").click()
            page.wait_for_function(
                "document.querySelectorAll('#lr-chat .lr-disclaimer').length === 0")
            page.wait_for_function("localStorage.getItem('legalrag-current') !== null")
            page.wait_for_timeout(500)
            page.reload()
            page.wait_for_selector("#lr-question textarea")
            page.wait_for_timeout(3000)  # what a restore would have shown by now
            assert Q19 not in page.locator("#lr-chat").inner_text()
        finally:
            browser.close()
            app.stop()
    history = History(data / "history.sqlite3")
    deadline = time.monotonic() + 10
    while (records := eval_records(history)) and records[0]["rating"] != 1 \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(records) == 1
    assert records[0]["relevant"] == ["《中华人民共和国劳动合同法》第十九条"]
    assert (records[0]["rating"], records[0]["comment"]) == (1, "第十九条正是答案")
