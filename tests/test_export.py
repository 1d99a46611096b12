"""Exporting a conversation (answer/export.py): Markdown and Word with the citation labels
and the full text of every cited article, over real articles of the small index; the same
from `legalrag ask --format md|docx --out FILE` with the SmolLM2 GGUF."""

from __future__ import annotations

from pathlib import Path

import pytest

from legalrag.answer.assistant import DISCLAIMER, Answer, Timings, compose
from legalrag.answer.check import CorpusFacts, check_answer
from legalrag.answer.export import Exported, cited_articles, to_docx, to_markdown
from legalrag.answer.prompt import Source
from legalrag.cli import main

RAW = ("根据《劳动合同法》第十九条[1]，试用期最长不得超过六个月。"
       "另见《合同法》第五十二条和《劳动法》第九百条。")


@pytest.fixture(scope="module")
def answer(small_index):
    hits = small_index.search("劳动合同法第十九条 试用期", k=3)
    assert hits[0].article.citation == "《劳动合同法》第十九条"
    sources = tuple(Source(n, h.article, h.article.text, False) for n, h in enumerate(hits, 1))
    facts = CorpusFacts.from_articles(small_index.articles)
    citations = tuple(check_answer(RAW, [s.article for s in sources], facts))
    text, notes = compose(RAW, citations)
    return Answer("试用期最长多久？", "试用期最长多久？", tuple(hits), sources, text, RAW,
                  citations, False, Timings(1.0, 2.0, 3.0), "test", notes)


def test_markdown_has_the_answer_its_labels_and_the_cited_articles(answer):
    items = [Exported("试用期最长多久？", answer),
             Exported("那工资呢？", None, "回答被停止或中断", "依据《劳动法》第五十条：“工资应当"
                      "以货币形式按月支付给劳动者本人。”\n\n根据")]
    md = to_markdown(items)
    assert "## 问题 1\n\n> 试用期最长多久？" in md and "## 问题 2" in md
    assert ("（未回答：回答被停止或中断）\n\n停止前已显示的部分（模型的文字未经核对）："
            "\n\n依据《劳动法》第五十条") in md
    assert answer.text.strip() in md  # the checked text, marks included
    assert "〔⚠已失效〕" in md and "〔⚠法库中无此条文〕" in md
    assert "- ✓ 《劳动合同法》第十九条 — 已核实" in md
    assert "\n*✓ 的含义：有所引条文为据；条文中的例外、但书未必都已写出，请对照原文*\n" in md
    assert "- ✗ 《合同法》第五十二条 — 已失效" in md
    appendix = md[md.index("## 附录：所引条文全文"):]
    assert "### 《劳动合同法》第十九条" in appendix
    assert "中华人民共和国劳动合同法 · 版本 2012-12-28 · 现行有效" in appendix
    assert "试用期不得超过六个月" in appendix  # the full text of the article
    assert [a.citation for a in cited_articles(items)] == ["《劳动合同法》第十九条"]
    assert md.rstrip().endswith(DISCLAIMER)


def test_copies_and_quoted_provisions_as_the_screen_shows_them(answer, small_index):
    """A browser export listed 「✓ 《劳动合同法》第四十七条 — 已核实：照录…」 beside the
    〔未能核实〕 the screen showed for the same article (the ✓ was for words copied from it),
    and its appendix left out the article of a quoted provision."""
    import dataclasses

    from legalrag.answer.provision import split_passages

    a19 = answer.sources[0].article
    copied = a19.text.split("\n")[0]
    raw = f"根据《劳动合同法》第十九条，公司可以随意约定。{copied}"
    sources = [s.article for s in answer.sources]
    facts = CorpusFacts.from_articles(small_index.articles)
    citations = tuple(check_answer(raw, sources, facts, lambda sentence, article: False))
    assert [(c.kind, c.label) for c in citations][:2] == [("article", "unsupported"),
                                                          ("passage", "verified")]
    other = next(h.article for h in small_index.search("劳动法 工作时间", k=5)
                 if h.article.law != a19.law)
    quoted = dataclasses.replace(answer, raw_text=raw, citations=citations,
                                 provisions=(split_passages(other)[0],))
    md = to_markdown([Exported("试用期最长多久？", quoted)])
    listed = md[md.index("**引用核对**"):md.index("## 附录")]
    assert "- ? 《劳动合同法》第十九条 — 未能核实此说法" in listed
    assert "- 《劳动合同法》第十九条 — 照录条文原文，与条文逐字一致" in listed
    assert "✓" not in listed  # no ✓ was shown, so none is explained either
    appendix = md[md.index("## 附录：所引条文全文"):]
    assert appendix.index(f"### {other.citation}") < appendix.index("### 《劳动合同法》第十九条")


def test_a_copy_with_a_word_changed_is_not_listed_as_word_for_word(answer, small_index):
    """A copy of 第十九条 whose number was changed (二个月 for the article's 一个月 after the
    same words) is listed as 引文与条文不符 with the change, never as 与条文逐字一致."""
    import dataclasses

    a19 = answer.sources[0].article
    copied = a19.text.split("\n")[0]
    assert "试用期不得超过一个月" in copied
    raw = copied.replace("试用期不得超过一个月", "试用期不得超过两个月")
    sources = [s.article for s in answer.sources]
    citations = tuple(check_answer(raw, sources, CorpusFacts.from_articles(small_index.articles)))
    changed = dataclasses.replace(answer, raw_text=raw, citations=citations, provisions=())
    listed = to_markdown([Exported("试用期最长多久？", changed)])
    listed = listed[listed.index("**引用核对**"):listed.index("## 附录")]
    assert "- ✗ 《劳动合同法》第十九条 — 引文与条文不符：抄录来源《劳动合同法》第十九条" in listed
    assert "逐字一致" not in listed


def test_docx_holds_the_same(answer, tmp_path):
    from docx import Document

    path = to_docx([Exported("试用期最长多久？", answer)], tmp_path / "答复.docx")
    text = "\n".join(p.text for p in Document(str(path)).paragraphs)
    assert "试用期最长多久？" in text and "〔⚠已失效〕" in text
    assert "✓ 《劳动合同法》第十九条 — 已核实" in text
    assert "《劳动合同法》第十九条\n中华人民共和国劳动合同法 · 版本 2012-12-28 · 现行有效" in text
    assert "试用期不得超过六个月" in text and text.rstrip().endswith(DISCLAIMER)
    assert not list(tmp_path.glob("*.part"))


def test_the_browser_export_names_and_writes_the_file(answer, tmp_path):
    from legalrag.web.history import export_file
    from legalrag.web.session import ChatSession, Exchange

    session = ChatSession(exchanges=[
        Exchange(1, "试用期最长多久？", state="done", answer=answer, hits=answer.hits),
        Exchange(2, "那工资呢？", state="error", error="模型无法使用")])
    md = export_file(session, "md", tmp_path)
    assert md.name == "legalrag_试用期最长多久？.md"
    assert "（未回答：出错：模型无法使用）" in md.read_text(encoding="utf-8")
    assert export_file(session, "docx", tmp_path).stat().st_size > 5000


def test_ask_writes_markdown_and_docx(small_settings, tmp_path, monkeypatch, capsys):
    from docx import Document

    from legalrag.answer.modelfile import smollm2_path

    monkeypatch.setenv("LEGALRAG_LLM_MAX_TOKENS", "24")
    monkeypatch.setenv("LEGALRAG_LLM_THREADS", "1")
    monkeypatch.setenv("LEGALRAG_TUNE_QUESTIONS", "")
    monkeypatch.chdir(tmp_path)
    base = ["--corpus", str(small_settings.corpus_dir), "--index-dir",
            str(small_settings.index_dir), "ask", "劳动合同法第十九条规定的试用期最长多久？",
            "--model", str(smollm2_path())]
    assert main([*base, "--out", "a.md"]) == 0
    md = (tmp_path / "a.md").read_text(encoding="utf-8")
    assert "> 劳动合同法第十九条规定的试用期最长多久？" in md and "## 附录：所引条文全文" in md
    assert "已导出：a.md" in capsys.readouterr().err
    assert main([*base, "--format", "docx", "--out", "a.docx"]) == 0
    text = "\n".join(p.text for p in Document(str(tmp_path / "a.docx")).paragraphs)
    assert "劳动合同法第十九条规定的试用期最长多久？" in text and DISCLAIMER in text
    capsys.readouterr()
    assert main([*base, "--format", "md"]) == 0  # no --out: the document on stdout
    out = capsys.readouterr().out
    assert out.startswith("# legalrag 法律问答记录") and "来源（检索用时" not in out


@pytest.mark.fast
@pytest.mark.parametrize("args, message", [
    (["--format", "docx"], "--format docx needs --out"),
    (["--out", "a.txt"], "cannot tell the format of a.txt"),
    (["--out", "no/such/folder/a.md"], "does not exist"),
    (["--json", "--format", "md"], "cannot be used together"),
])
def test_ask_refuses_export_options_that_do_not_fit(args, message, capsys, tmp_path,
                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["ask", "试用期最长多久？", *args]) == 2
    assert message in capsys.readouterr().err
    assert list(Path(tmp_path).iterdir()) == []  # nothing written, no model loaded
