"""The browser chat end to end: Debian's Chromium driven by Playwright against the app
served on 127.0.0.1, started the way a user starts it (`legalrag serve`, a subprocess),
over a copy of the small real corpus and index, with the SmolLM2 GGUF (one run with the
default Qwen model, marked slow). Screenshots go to docs/screenshots/.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
STATUTE = """# 星河市古树名木保护条例

第一条 为了保护古树名木，制定本条例。

第二条 树龄在一百年以上的树木为古树，由园林绿化主管部门建立档案。

第三条 禁止在古树名木保护范围内挖坑取土、倾倒有害废渣。
"""
# The browser records the sources panel and the answer after every DOM change.
RECORDER = """() => {
  window.__lr = [];
  const snap = () => {
    const bots = document.querySelectorAll('#lr-chat [data-testid="bot"]');
    const last = bots.length ? bots[bots.length - 1] : null;
    const answer = last && last.querySelector('.lr-answer');
    const rec = {src: document.querySelectorAll('#lr-sources .lr-src').length,
                 len: answer ? answer.innerText.length : 0,
                 done: !!(last && last.querySelector('.lr-disclaimer'))};
    const prev = window.__lr[window.__lr.length - 1];
    if (!prev || prev.src !== rec.src || prev.len !== rec.len || prev.done !== rec.done)
      window.__lr.push(rec);
  };
  new MutationObserver(snap).observe(document.body,
    {subtree: true, childList: true, characterData: true});
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """`legalrag serve` in a subprocess; its stderr is collected for failure messages."""

    def __init__(self, tmp: Path, settings, **env: str) -> None:
        shutil.copytree(settings.corpus_dir, tmp / "corpus")
        shutil.copytree(settings.index_dir, tmp / "indexes")
        self.corpus = tmp / "corpus"
        self.port = free_port()
        environ = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                   "LEGALRAG_CORPUS_DIR": str(self.corpus),
                   "LEGALRAG_INDEX_DIR": str(tmp / "indexes"),
                   "LEGALRAG_CACHE_DIR": str(settings.cache_dir), **env}
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "legalrag", "serve", "--port", str(self.port)],
            cwd=tmp, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait_for_url(180)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                m = re.search(r"聊天界面已启动 (http://\S+)", line)
                if m:
                    return m.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise AssertionError("the app did not start:\n" + "\n".join(self.lines[-40:]))

    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def app(small_settings, tmp_path_factory):
    from legalrag.answer.modelfile import smollm2_path

    served = App(tmp_path_factory.mktemp("served"), small_settings,
                 LEGALRAG_LLM_MODEL_PATH=str(smollm2_path()), LEGALRAG_LLM_MAX_TOKENS="48",
                 LEGALRAG_LLM_THREADS="1", LEGALRAG_ANSWER_SOURCE_TOKENS="300")
    yield served
    served.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 950}, locale="zh-CN")
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    outside: list[str] = []
    pg.on("request", lambda r: outside.append(r.url)
          if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
    yield pg
    context.close()
    assert outside == [], f"the page fetched from outside this machine: {outside}"


def ask(page, question: str) -> None:
    page.locator("#lr-question textarea").fill(question)
    page.locator("#lr-question textarea").press("Enter")


def open_chat(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#lr-question textarea")
    page.wait_for_selector("#lr-index-notice :text('法库：')")


def test_question_shows_sources_first_then_a_streamed_answer(app, page):
    open_chat(page, app.url)
    assert "不构成法律意见" in page.content()
    page.evaluate(RECORDER)
    ask(page, "劳动合同法第十九条规定的试用期最长多久？")
    page.wait_for_selector("#lr-chat .lr-disclaimer", timeout=180_000)
    records = page.evaluate("window.__lr")
    first_source = next(i for i, r in enumerate(records) if r["src"] > 0)
    first_text = next(i for i, r in enumerate(records) if r["len"] > 0)
    assert first_source < first_text, records
    lengths = {r["len"] for r in records if r["len"] > 0 and not r["done"]}
    assert len(lengths) >= 3, records  # the answer grew on screen piece by piece
    panel = page.locator("#lr-sources").inner_text()
    assert "劳动合同法 › 第二章 劳动合同的订立 › 第十九条" in panel and "现行有效" in panel
    assert "试用期不得超过六个月" in panel


def test_abstaining_is_distinct_and_links_jump_to_sources(app, page):
    open_chat(page, app.url)
    ask(page, "如何烤制法式面包？")
    box = page.locator("#lr-chat .lr-abstain")
    box.wait_for(timeout=120_000)
    assert "未作回答" in box.inner_text()
    card = page.locator("#lr-t1-h1")
    page.locator("#lr-sources").evaluate("el => el.scrollTop = el.scrollHeight")
    box.locator("a.lr-cite").first.click()
    page.wait_for_function("document.getElementById('lr-t1-h1').classList.contains('lr-flash')")
    from playwright.sync_api import expect

    expect(card).to_be_in_viewport()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "abstain.png"), full_page=True)


def test_bad_input_keeps_the_question_and_an_empty_one_adds_nothing(app, page):
    """A browser session: a 3,000-character paste was rejected and the box emptied, so the
    text was lost; each empty 提问 added a 「（空白问题）」 bubble, an error bubble and a
    history entry."""
    from legalrag.web.chat import EMPTY_QUESTION, HINT_TITLE

    open_chat(page, app.url)
    box = page.locator("#lr-question textarea")
    box.press("Enter")
    page.get_by_text(EMPTY_QUESTION).wait_for()  # a hint, not a bubble
    # titled in Chinese, not Gradio's "Info" (a browser session)
    shown = page.evaluate("""() => {
        const t = document.querySelector('[data-testid=toast-body] .toast-title');
        return [getComputedStyle(t).fontSize, getComputedStyle(t, '::after').content];
    }""")
    assert shown == ["0px", f'"{HINT_TITLE}"']
    assert page.locator("#lr-chat [data-testid=user]").count() == 0
    assert page.locator("#lr-chat [data-testid=bot]").count() == 0
    long = "公司拖欠工资三个月，我可以辞职吗？" * 70  # 1,190 characters
    ask(page, long)
    page.locator("#lr-chat .lr-error").wait_for(timeout=60_000)
    assert "问题太长（1,190 字，上限 1,000 字）" in page.locator("#lr-chat .lr-error").inner_text()
    page.wait_for_function("document.querySelector('#lr-question textarea').value.length > 0")
    assert box.input_value() == long  # back in the box, to be shortened
    # An error is no answer: no 👍/👎 under it (a browser session found them there), but
    # its copy button stays. Answers keep theirs (test_history rates one).
    bot_buttons = page.locator("#lr-chat .message-buttons-left button")
    assert [b.get_attribute("aria-label") for b in bot_buttons.all() if b.is_visible()] == \
        ["复制消息"]


def test_upload_a_statute_then_ask_about_it(app, page, tmp_path):
    statute = tmp_path / "星河市古树名木保护条例.md"
    statute.write_text(STATUTE, encoding="utf-8")
    open_chat(page, app.url)
    page.get_by_role("tab", name="知识库").click()
    page.wait_for_selector("#lr-kb-status :text('嵌入模型')")
    page.set_input_files("#lr-upload input[type=file]", [str(statute)])
    preview = page.locator("#lr-preview")
    preview.locator(":text('✓ 星河市古树名木保护条例.md')").wait_for()
    assert "3 条（现行有效 3 条）" in preview.inner_text()
    page.locator("#lr-add").click()
    page.locator("#lr-kb-result :text('已添加')").wait_for(timeout=180_000)
    assert "用户上传/星河市古树名木保护条例.md" in page.locator("#lr-user-files").inner_text()
    saved = app.corpus / "用户上传" / statute.name
    assert saved.read_text(encoding="utf-8") == STATUTE
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "knowledge-base.png"), full_page=True)

    page.get_by_role("tab", name="问答").click()
    ask(page, "星河市古树名木保护条例第二条规定了什么？")
    card = page.locator("#lr-t1-h1")
    card.wait_for(timeout=60_000)
    text = card.inner_text()
    assert "星河市古树名木保护条例 › 第二条" in text and "树龄在一百年以上的树木为古树" in text
    page.wait_for_selector("#lr-chat .lr-disclaimer", timeout=180_000)


def test_bad_uploads_are_rejected_with_reasons(app, page, tmp_path):
    gbk = tmp_path / "某某条例.txt"
    gbk.write_bytes(STATUTE.replace("星河市古树名木", "某某").encode("gbk"))
    empty = tmp_path / "没有条文的办法.md"
    empty.write_text("# 某某办法\n\n本办法只有说明，没有条文。\n", encoding="utf-8")
    before = sorted(p.name for p in app.corpus.rglob("*"))
    open_chat(page, app.url)
    page.get_by_role("tab", name="知识库").click()
    page.set_input_files("#lr-upload input[type=file]", [str(gbk), str(empty)])
    preview = page.locator("#lr-preview")
    preview.locator(":text('✗ 没有条文的办法.md')").wait_for()
    text = preview.inner_text()
    assert "✗ 某某条例.txt" in text and "不是 UTF-8 编码" in text
    assert "没有找到条文" in text and "不会写入任何内容" in text
    assert page.locator("#lr-add").is_disabled()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "upload-rejected.png"), full_page=True)
    assert sorted(p.name for p in app.corpus.rglob("*")) == before


def test_the_server_does_not_serve_files_from_disk(app):
    corpus_file = app.corpus / "社会法" / "劳动法(2018-12-29).md"
    for target in (str(corpus_file), "/etc/passwd", str(ROOT / "pyproject.toml")):
        status = fetch(f"{app.url}gradio_api/file={quote(target)}")[0]
        assert status in (403, 404), (target, status)


def fetch(url: str, data: bytes | None = None, headers: dict | None = None,
         method: str | None = None) -> tuple[int, str, dict]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - 127.0.0.1 only
            return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace"), dict(e.headers)


def test_with_login_unauthenticated_requests_are_refused(small_settings, browser):
    from legalrag.web.ui import start

    settings = replace(small_settings, auth_user="anna", auth_password="s3cret-pw",
                       port=free_port())
    server = start(settings, update_index=False, warm_up=False)
    try:
        url = server.url
        assert url.startswith("http://127.0.0.1:")
        status, body, _ = fetch(url)
        # The page itself is only Gradio's empty shell (it shows the login form); the app's
        # layout and components come from /config, which is refused below.
        assert status == 200
        assert "lr-question" not in body and "知识库" not in body and "法律问答" not in body
        corpus_file = Path(settings.corpus_dir).resolve() / "社会法" / "劳动法(2018-12-29).md"
        refused = [
            fetch(url + "config"),
            fetch(url + "gradio_api/info"),
            fetch(url + "gradio_api/openapi.json"),
            fetch(url + "gradio_api/queue/join", b'{"data": [], "fn_index": 0}',
                 {"Content-Type": "application/json"}),
            fetch(url + "gradio_api/call/ask", b'{"data": ["test"]}',
                 {"Content-Type": "application/json"}),
            fetch(url + "gradio_api/upload", b"--x\r\n", {"Content-Type":
                                                          "multipart/form-data; boundary=x"}),
            fetch(url + f"gradio_api/file={quote(str(corpus_file))}"),
        ]
        assert [r[0] for r in refused] == [401] * len(refused), [r[:2] for r in refused]
        form = b"username=anna&password=wrong"
        kind = {"Content-Type": "application/x-www-form-urlencoded"}
        assert fetch(url + "login", form, kind)[0] == 400
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(urllib.request.Request(url + "login", b"username=anna&password=s3cret-pw",
                                                kind), timeout=30) as r:
            assert r.status == 200
        with opener.open(url + "config", timeout=30) as r:  # the same client, logged in
            assert r.status == 200 and "lr-question" in r.read().decode("utf-8")

        page = browser.new_page()
        try:
            page.goto(url)
            page.locator("input[type=password]").wait_for(timeout=30_000)
            assert page.locator("#lr-question").count() == 0
            page.locator("input[type=text]").first.fill("anna")
            page.locator("input[type=password]").fill("s3cret-pw")
            page.locator("input[type=password]").press("Enter")
            page.wait_for_selector("#lr-question textarea", timeout=30_000)
        finally:
            page.close()
    finally:
        server.close()


@pytest.mark.slow
def test_default_model_answers_in_the_browser(small_settings, browser, tmp_path):
    """One run with the default Qwen GGUF (slow on 2 cores: ~1-3 min)."""
    served = App(tmp_path, small_settings, LEGALRAG_LLM_MAX_TOKENS="200")
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 950}, locale="zh-CN")
        page = context.new_page()
        open_chat(page, served.url)
        ask(page, "试用期最长可以约定多久？")
        page.wait_for_selector("#lr-sources .lr-src", timeout=60_000)
        page.wait_for_selector("#lr-chat .lr-disclaimer", timeout=600_000)
        answer = page.locator("#lr-chat [data-testid=bot]").last
        text = answer.inner_text()
        assert len(re.findall(r"[\u4e00-\u9fff]", text)) > 20, text
        assert "试用期" in text, text
        cites = answer.locator("a.lr-cite")
        if cites.count():
            target = cites.first.get_attribute("href").lstrip("#")
            cites.first.click()
            page.wait_for_function(
                f"document.getElementById({json.dumps(target)}).classList.contains('lr-flash')")
        page.wait_for_timeout(2000)  # let the flash fade for the screenshot
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "chat.png"), full_page=True)
        context.close()
        assert '"outcome": "answered"' in served.log()
    finally:
        served.stop()
