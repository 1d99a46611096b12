"""The answer in the browser (issue 12): the quoted provision is on screen before the
model's first word and highlighted in its article's card; 停止 while the model is still
reading marks the bubble at once, and the next question goes through.

Debian's Chromium through Playwright against `legalrag serve` (a subprocess) over a copy
of the small real index, with the SmolLM2 GGUF.
"""

from __future__ import annotations

import pytest
from test_browser import App, ask, open_chat, page  # noqa: F401 (a fixture)

from legalrag.answer.provision import GAP

pytestmark = pytest.mark.browser

# The browser records, after every DOM change, whether the last bubble shows the quoted
# provision, how much model text it shows, and whether it is finished.
RECORDER = """() => {
  window.__lr = [];
  const snap = () => {
    const bots = document.querySelectorAll('#lr-chat [data-testid="bot"]');
    const last = bots.length ? bots[bots.length - 1] : null;
    const answer = last && last.querySelector('.lr-answer');
    const rec = {quoted: !!(last && last.querySelector('.lr-provision')),
                 len: answer ? answer.innerText.replace('▍', '').trim().length : 0,
                 done: !!(last && last.querySelector('.lr-disclaimer'))};
    const prev = window.__lr[window.__lr.length - 1];
    if (!prev || prev.quoted !== rec.quoted || prev.len !== rec.len || prev.done !== rec.done)
      window.__lr.push(rec);
  };
  new MutationObserver(snap).observe(document.body,
    {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def app(small_settings, tmp_path_factory):
    from legalrag.answer.modelfile import smollm2_path

    served = App(tmp_path_factory.mktemp("served-answer"), small_settings,
                 LEGALRAG_LLM_MODEL_PATH=str(smollm2_path()), LEGALRAG_LLM_MAX_TOKENS="48",
                 LEGALRAG_LLM_THREADS="1")
    yield served
    served.stop()


def test_the_provision_comes_first_and_is_highlighted(app, page):  # noqa: F811
    open_chat(page, app.url)
    page.evaluate(RECORDER)
    ask(page, "公司拖欠工资三个月，我可以辞职并要求经济补偿吗？")
    page.wait_for_selector("#lr-chat .lr-disclaimer", timeout=180_000)
    records = page.evaluate("window.__lr")
    quoted = next(i for i, r in enumerate(records) if r["quoted"])
    written = next(i for i, r in enumerate(records) if r["len"] > 0)
    assert quoted < written, records
    bubble = page.locator("#lr-chat [data-testid=bot]").last
    quotes = bubble.locator(".lr-provision")  # one, or two from two sources
    assert 1 <= quotes.count() <= 2
    total = 0
    for i in range(quotes.count()):
        provision = quotes.nth(i)
        head = provision.locator(".lr-provision-head").inner_text()
        # the first is the basis; a second, less sure, is a related provision
        assert head.startswith("依据 《" if i == 0 else "另见 《") and "条" in head, head
        lines = [t.strip() for t in provision.locator("blockquote p").all_inner_texts()]
        # A gap (……) stands for the lines left out between a list's lead and the item
        # quoted; it is no words of the article, so it is not highlighted.
        lines = [t for t in lines if t != GAP]
        # The same words are highlighted in the card the citation links to.
        target = provision.locator("a.lr-cite").get_attribute("href").lstrip("#")
        marked = page.locator(f"#{target} mark.lr-hl").all_inner_texts()
        assert marked and [m.strip() for m in marked] == lines, (marked, lines)
        total += len(lines)
    assert page.locator("#lr-sources mark.lr-hl").count() == total


@pytest.fixture(scope="module")
def slow_reader(small_settings, tmp_path_factory):
    """A server whose model reads a long prompt (whole articles, 1,500 tokens, one
    thread): its prefill takes seconds, long enough to press 停止 in the middle of it."""
    from legalrag.answer.modelfile import smollm2_path

    served = App(tmp_path_factory.mktemp("served-slow"), small_settings,
                 LEGALRAG_LLM_MODEL_PATH=str(smollm2_path()), LEGALRAG_LLM_MAX_TOKENS="32",
                 LEGALRAG_LLM_THREADS="1", LEGALRAG_ANSWER_DESIGN="articles",
                 LEGALRAG_ANSWER_SOURCE_TOKENS="2000", LEGALRAG_ANSWER_TOP_K="10")
    yield served
    served.stop()


def test_stop_while_reading_then_the_next_question_goes_through(slow_reader, page):  # noqa: F811
    open_chat(page, slow_reader.url)
    ask(page, "公司拖欠工资三个月，我可以辞职并要求经济补偿吗？")
    bubble = page.locator("#lr-chat [data-testid=bot]").last
    page.wait_for_selector("#lr-chat :text('正在阅读')", timeout=60_000)
    page.locator("#lr-stop").click()
    # The bubble says so at once, not when the model gets round to it.
    page.wait_for_selector("#lr-chat :text('已停止')", timeout=3_000)
    assert bubble.locator(".lr-disclaimer").count() == 0
    ask(page, "劳动合同法第十九条规定的试用期最长多久？")
    page.wait_for_function(
        "document.querySelectorAll('#lr-chat [data-testid=bot]').length === 2")
    # The stopped bubble has no disclaimer: the one that appears is the second answer's.
    page.wait_for_selector("#lr-chat .lr-disclaimer", timeout=180_000)
    assert page.locator("#lr-question textarea").input_value() == ""
    assert '"outcome": "stopped"' in slow_reader.log()
