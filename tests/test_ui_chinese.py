"""Every string a user of the browser UI sees is Chinese (issue 15, part 5).

A real Chromium whose language is English (the case that showed Gradio's own "Copy
message" and "More tabs") loads the app served by `legalrag serve` over the small corpus
with SmolLM2, visits every tab and the sidebar, asks a question, checks a text, uploads a
statute and adds it; after each step it reads the page's visible text (``innerText``) and
the aria-labels, titles, placeholders and alt texts of visible elements, and fails listing
every Latin word not in a small allow-list. Disabled controls must be disabled and look it.
"""

from __future__ import annotations

import re

import pytest
from test_browser import STATUTE, App, ask

pytestmark = pytest.mark.browser

# Latin that belongs on a Chinese page: the product's and file formats' names, and the
# administrator's command in the 知识库 tab. Law names have no Latin; numbers are not words.
ALLOWED_PHRASES = ("legalrag index update", "corpus/", "UTF-8", "BM25")
ALLOWED_WORDS = {"legalrag", "md", "txt", "Markdown", "Word", "B", "KB", "MB"}  # B: bytes

# Visible text plus what assistive technology reads out on visible elements.
READ_PAGE = """() => {
  const shown = el => el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null;
  const out = [document.body.innerText];
  for (const el of document.querySelectorAll('[aria-label],[title],[placeholder],[alt]')) {
    if (!shown(el)) continue;
    for (const a of ['aria-label', 'title', 'placeholder', 'alt']) {
      const v = el.getAttribute(a);
      if (v) out.push(v);
    }
  }
  return out.join('\\n');
}"""


def latin_words(text: str, allowed: set[str]) -> list[str]:
    """The Latin words of text that are not allowed, in order, each with its line."""
    found = []
    for line in text.splitlines():
        rest = line
        for phrase in ALLOWED_PHRASES:
            rest = rest.replace(phrase, " ")
        for word in re.findall(r"[A-Za-z][A-Za-z'’-]*", rest):
            if word not in allowed and word not in ALLOWED_WORDS:
                found.append(f"{word!r} in {line.strip()[:120]!r}")
    return found


@pytest.mark.fast
def test_the_checker_catches_latin_and_passes_chinese():
    assert latin_words("复制消息\n检索方式：关键词（BM25）\n第 3 条", set()) == []
    assert latin_words("Copy message", set()) == [
        "'Copy' in 'Copy message'", "'message' in 'Copy message'"]
    assert latin_words("bot's message: <div class=\"lr-answer\">", set())[0].startswith(
        '"bot\'s"')
    assert latin_words("用时 1968.3 s", set()) == ["'s' in '用时 1968.3 s'"]


def serve_page(page: bytes, content_type: bytes, chunks: int = 2) -> list[dict]:
    """What PageLanguage sends for an app that sends page in chunks."""
    import asyncio

    from legalrag.web.security import PageLanguage

    sent: list[dict] = []
    step = -(-len(page) // chunks)
    parts = [page[i:i + step] for i in range(0, len(page), step)]

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", content_type), (b"content-length", str(len(page)).encode())]})
        for i, part in enumerate(parts):
            await send({"type": "http.response.body", "body": part,
                        "more_body": i < len(parts) - 1})

    async def send(message):
        sent.append(message)

    asyncio.run(PageLanguage(app)({"type": "http", "method": "GET"}, None, send))
    return sent


@pytest.mark.fast
def test_the_page_is_chinese_before_gradio_starts():
    from legalrag.web.security import LANGUAGE_SCRIPT

    page = b'<!doctype html><html lang="en"><head><script type="module" src="x.js">'
    sent = serve_page(page + b"</script></head><body></body></html>", b"text/html; charset=utf-8")
    body = sent[1]["body"]
    assert body.startswith(b'<!doctype html><html lang="zh-CN"><head>'
                           + LANGUAGE_SCRIPT.encode() + b'<script type="module"')
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(body)).encode()
    assert len(sent) == 2 and "navigator,'language'" in LANGUAGE_SCRIPT
    other = serve_page(b'{"lang": "en", "x": "<head>"}', b"application/json")
    assert b"".join(m.get("body", b"") for m in other[1:]) == b'{"lang": "en", "x": "<head>"}'


@pytest.mark.fast
def test_the_index_status_and_progress_are_chinese_with_units():
    from legalrag.index.build import BuildResult
    from legalrag.index.corpus import CorpusReport
    from legalrag.web.jobs import stage_unit
    from legalrag.web.kb import describe, duration

    assert [duration(x) for x in (4.24, 45.4, 1968.3, 3900)] == [
        "4.2 秒", "45 秒", "32 分 48 秒", "1 小时 5 分"]
    result = BuildResult(None, CorpusReport(), ["lookup", "bm25", "dense", "tuned-queries"],
                         seconds={"segment": 30.0, "embed": 1938.3})
    assert describe(result) == "0 部法律（0 个版本），现行有效条文 0 条，共 0 条；用时 32 分 48 秒"
    assert latin_words(describe(result), set()) == []
    assert [stage_unit(s) for s in ("write", "embed", "swap")] == ["个文件", "条", ""]


@pytest.mark.fast
def test_the_progress_bar_counts_files_and_articles_but_not_the_swap():
    from legalrag.web.ui import gradio_progress

    shown: list[tuple] = []  # what a gr.Progress is called with

    def progress(value, desc=None, unit=None):
        shown.append((value, desc, unit))

    make = gradio_progress(progress)
    make("write", 2)(2)
    make("parse", 0)
    make("embed", 40)(40)
    make("swap", 0)(0)
    assert shown == [((0, 2), "写入文件", "个文件"), ((2, 2), "写入文件", "个文件"),
                     (None, "解析法库", None), ((0, 40), "计算向量（语义索引）", "条"),
                     ((40, 40), "计算向量（语义索引）", "条"), (None, "切换到新索引", None),
                     (None, "切换到新索引", None)]


@pytest.mark.fast
def test_the_job_line_and_an_empty_upload_plan_read_right():
    from legalrag.web.jobs import Job
    from legalrag.web.uploads import UploadCheck, UploadPlan
    from legalrag.web.views import render_job, render_plan

    line = render_job(Job("add", "添加 1 个文件", "embed", 12, 40, 0.0))
    assert "（12/40 条）" in line
    assert "（" not in render_job(Job("add", "添加 1 个文件", "swap", 1, 1, 0.0))
    refused = UploadPlan((UploadCheck("a.pdf", "", problem="不是 UTF-8 文本"),))
    assert render_plan(refused).startswith("<p>没有可以添加的文件，1 个文件不能添加")


@pytest.fixture(scope="module")
def app(small_settings, tmp_path_factory):
    from legalrag.answer.modelfile import smollm2_path

    served = App(tmp_path_factory.mktemp("served"), small_settings,
                 LEGALRAG_LLM_MODEL_PATH=str(smollm2_path()), LEGALRAG_LLM_MAX_TOKENS="24",
                 LEGALRAG_LLM_THREADS="1", LEGALRAG_ANSWER_SOURCE_TOKENS="300")
    yield served
    served.stop()


@pytest.fixture(params=[(1400, 950), (420, 900)], ids=["wide", "narrow"])
def english_page(request, browser):
    """A page in a browser set to American English; narrow shows Gradio's "More tabs"."""
    width, height = request.param
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


def test_every_visible_string_is_chinese(app, english_page, small_settings, tmp_path):
    from legalrag.index.embed import embedder_identity

    page = english_page
    # The status panel names the embedding model as the index records it (m3e-small@…).
    allowed = set(re.findall(r"[A-Za-z][A-Za-z'’-]*", embedder_identity(small_settings)["name"]))
    seen: dict[str, list[str]] = {}

    def read(step: str) -> None:
        page.wait_for_timeout(300)  # let Gradio finish rendering the step's update
        seen[step] = latin_words(page.evaluate(READ_PAGE), allowed)

    page.goto(app.url)
    page.wait_for_selector("#lr-index-notice :text('法库：')")
    lang = page.evaluate("document.documentElement.lang")
    # Gradio's tab-overflow button (shown when the tabs do not fit), renamed from "More tabs"
    page.locator("button[aria-label='更多标签页']").wait_for(state="attached")
    read("问答 (empty)")
    ask(page, "劳动合同法第十九条规定的试用期最长多久？")
    page.wait_for_selector("#lr-chat .lr-disclaimer", timeout=180_000)
    page.locator("#lr-chat [data-testid='bot']").last.hover()
    read("问答 (an answer)")
    page.locator("#lr-chat [data-testid='bot']").last.click()
    read("问答 (a message clicked)")
    page.get_by_role("tab", name="核查引用").click()
    page.locator("#lr-check-input textarea").fill("依照《劳动合同法》第十九条，试用期最长六个月。")
    page.locator("#lr-check").click()
    page.wait_for_selector("#lr-check-result .lr-check-summary")
    read("核查引用")
    page.get_by_role("tab", name="知识库").click()
    page.wait_for_selector("#lr-kb-status :text('嵌入模型')")
    disabled = [looks_disabled(page, b) for b in ("#lr-remove", "#lr-add")]  # none chosen
    read("知识库")
    statute = tmp_path / "星河市古树名木保护条例.md"
    statute.write_text(STATUTE, encoding="utf-8")
    page.set_input_files("#lr-upload input[type=file]", [str(statute)])
    page.locator("#lr-preview :text('✓ 星河市古树名木保护条例.md')").wait_for()
    read("知识库 (preview)")
    page.locator("#lr-add").click()
    page.wait_for_timeout(700)
    read("知识库 (adding)")  # Gradio's progress display
    page.locator("#lr-kb-result :text('已添加')").wait_for(timeout=180_000)
    read("知识库 (added)")
    page.locator("#lr-remove-choice input").click()
    page.get_by_role("option").first.click()
    page.locator("#lr-remove").click()
    page.locator("#lr-kb-result :text('已删除')").wait_for(timeout=180_000)
    # The choice is gone with the file, and the button follows it in a second event
    # (removable.change) a moment after the result shows: wait for it, then look.
    page.locator("#lr-remove:disabled").wait_for(timeout=10_000)
    disabled.append(looks_disabled(page, "#lr-remove"))
    read("知识库 (removed)")
    page.locator("#lr-sidebar button").first.click()  # open 历史对话
    page.wait_for_selector("#lr-history-delete-all")
    read("历史对话")
    bad = {step: words for step, words in seen.items() if words}
    assert not bad, "Latin words on the page:\n" + "\n".join(
        f"{step}: {w}" for step, words in bad.items() for w in words)
    assert lang == "zh-CN"  # screen readers and CJK glyph choice follow it
    assert all(off and opacity < 0.8 for _, off, opacity in disabled), disabled


def looks_disabled(page, selector: str) -> tuple[str, bool, float]:
    """A button's selector, whether it is disabled, and its opacity (dimmed below 0.8)."""
    button = page.locator(selector)
    # Gradio fades a button's opacity: read it once the fade has finished, not halfway.
    opacity = button.evaluate(
        "b => Promise.all(b.getAnimations().map(a => a.finished))"
        ".then(() => getComputedStyle(b).opacity)")
    return selector, button.is_disabled(), float(opacity)
