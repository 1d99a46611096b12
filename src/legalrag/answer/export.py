"""A conversation as a document to keep or forward: Markdown, or Word (python-docx).

Each question, the answer as checked (every citation that is not verified marked), the
list of its citations with their labels, then an appendix with the full text of every
article cited (law, version date, in force or not) and the disclaimer. Used by the
browser's 导出 buttons and by ``legalrag ask --format md|docx --out FILE``.

    >>> items = [Exported(answer.question, answer)]                    # doctest: +SKIP
    >>> Path("答复.md").write_text(to_markdown(items), encoding="utf-8")  # doctest: +SKIP
    >>> to_docx(items, Path("答复.docx"))                               # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from legalrag.answer.assistant import DISCLAIMER, Answer
from legalrag.errors import LegalRagError
from legalrag.records import Article
from legalrag.vocab import LABEL_NAMES, LABEL_SIGNS, VERIFIED, VERIFIED_SCOPE

TITLE = "legalrag 法律问答记录"
COPY_NOTE = "照录条文原文，与条文逐字一致"
PARTIAL_HEAD = "停止前已显示的部分（模型的文字未经核对）："
FORMATS = ("md", "docx")


@dataclass(frozen=True)
class Exported:
    """One question of a conversation; answer None when it was not answered (note says
    why: stopped, failed)."""

    question: str
    answer: Answer | None
    note: str = ""
    # what was on screen when it stopped (the quoted provisions, the words streamed so
    # far): a browser session found a stopped answer exported as 未回答 alone
    partial: str = ""


def cited_articles(items: Sequence[Exported]) -> list[Article]:
    """Every article the answers quote or cite, once each, in order of first mention (an
    answer's quoted provisions come first, as they do in its text)."""
    seen: dict[str, Article] = {}
    for item in items:
        a = item.answer
        if a is None:
            continue
        for p in a.provisions:
            seen.setdefault(p.article.id, p.article)
        for c in a.citations:
            art = getattr(c, "article", None)
            if art is None and c.source and 1 <= c.source <= len(a.sources):
                art = a.sources[c.source - 1].article
            if art is not None and c.kind != "law":
                seen.setdefault(art.id, art)
    return list(seen.values())


def _version(a: Article) -> str:
    force = "现行有效" if a.in_force else "已失效或已被修订"
    return f"{a.law_title} · 版本 {a.version or '未注明'} · {force}"


def _citation_lines(answer: Answer) -> tuple[list[str], str]:
    """The list of an answer's citations with their labels, and what ✓ means ("" without
    a ✓). Words copied from a source are listed as copies, not as a second, verified
    citation beside the one the model wrote (the screen marks neither)."""
    out: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for c in answer.citations:
        key = (c.citation, c.label, c.kind == "passage")
        if key in seen:
            continue
        seen.add(key)
        if c.kind == "passage" and c.label == VERIFIED:
            out.append(f"{c.citation} — {COPY_NOTE}")
            continue
        note = f"：{c.note}" if c.note else ""
        note += f"；条文另有例外：{c.proviso}" if c.proviso else ""
        out.append(f"{LABEL_SIGNS[c.label]} {c.citation} — {LABEL_NAMES[c.label]}{note}")
    verified = any(c.label == VERIFIED and c.kind != "passage" for c in answer.citations)
    return out, (f"{LABEL_SIGNS[VERIFIED]} 的含义：{VERIFIED_SCOPE}" if verified else "")


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M")


def to_markdown(items: Sequence[Exported], title: str = TITLE) -> str:
    """The conversation as one Markdown document."""
    lines = [f"# {title}", "", f"导出时间：{_stamp()}", ""]
    for i, item in enumerate(items, 1):
        lines += [f"## 问题 {i}", "", *[f"> {ln}" for ln in item.question.strip().split("\n")],
                  ""]
        a = item.answer
        if a is None:
            lines += [f"（未回答：{item.note or '回答没有完成'}）", ""]
            if item.partial.strip():
                lines += [PARTIAL_HEAD, "", item.partial.strip(), ""]
            continue
        lines += ["**回答**", "", a.text.strip(), ""]
        cites, meaning = _citation_lines(a)
        if cites:
            lines += ["**引用核对**", "", *[f"- {c}" for c in cites], ""]
        if meaning:
            lines += [f"*{meaning}*", ""]
    articles = cited_articles(items)
    lines += ["---", "", "## 附录：所引条文全文", ""]
    if not articles:
        lines += ["（回答没有引用法库中的条文。）", ""]
    for art in articles:
        lines += [f"### {art.citation}", "", f"*{_version(art)}*", ""]
        if art.path:
            lines += [" › ".join(art.path), ""]
        lines += [*[ln for p in art.text.split("\n") if p.strip() for ln in (p.strip(), "")]]
    lines += ["---", "", DISCLAIMER, ""]
    return "\n".join(lines)


def to_docx(items: Sequence[Exported], path: Path, title: str = TITLE) -> Path:
    """The conversation as a Word document at path (written whole, or not at all)."""
    from docx import Document
    from docx.oxml.ns import qn
    from docx.shared import Pt, RGBColor

    doc = Document()
    normal = doc.styles["Normal"]
    normal.font.size = Pt(11)
    fonts = normal.element.get_or_add_rPr().get_or_add_rFonts()
    fonts.set(qn("w:eastAsia"), "宋体")  # Word's own font choice garbles nothing, but reads better

    doc.add_heading(title, level=0)
    doc.add_paragraph(f"导出时间：{_stamp()}")
    for i, item in enumerate(items, 1):
        doc.add_heading(f"问题 {i}", level=1)
        doc.add_paragraph(item.question.strip(), style="Intense Quote")
        a = item.answer
        if a is None:
            doc.add_paragraph(f"（未回答：{item.note or '回答没有完成'}）")
            if item.partial.strip():
                doc.add_paragraph(PARTIAL_HEAD)
                for para in item.partial.strip().split("\n"):
                    if para.strip():
                        doc.add_paragraph(para.strip())
            continue
        doc.add_heading("回答", level=2)
        for para in a.text.strip().split("\n"):
            if para.strip():
                doc.add_paragraph(para.strip())
        cites, meaning = _citation_lines(a)
        if cites:
            doc.add_heading("引用核对", level=2)
            for line in cites:
                run = doc.add_paragraph(style="List Bullet").add_run(line)
                if line.startswith("✗"):
                    run.font.color.rgb = RGBColor(0x99, 0x1B, 0x1B)
        if meaning:
            doc.add_paragraph().add_run(meaning).italic = True
    doc.add_page_break()
    doc.add_heading("附录：所引条文全文", level=1)
    articles = cited_articles(items)
    if not articles:
        doc.add_paragraph("（回答没有引用法库中的条文。）")
    for art in articles:
        doc.add_heading(art.citation, level=2)
        meta = doc.add_paragraph().add_run(_version(art))
        meta.italic = True
        if art.path:
            doc.add_paragraph(" › ".join(art.path))
        for para in art.text.split("\n"):
            if para.strip():
                doc.add_paragraph(para.strip())
    doc.add_paragraph()
    doc.add_paragraph(DISCLAIMER)

    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:
        doc.save(str(tmp))
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise LegalRagError(f"cannot write {path}: {e.strerror or e}",
                            fix="choose a folder you can write to") from None
    return path


def write(items: Sequence[Exported], path: Path, fmt: str) -> Path:
    """items to path as fmt ("md" or "docx")."""
    if fmt not in FORMATS:
        raise LegalRagError(f"unknown export format {fmt!r}", fix="use md or docx")
    if fmt == "docx":
        return to_docx(items, path)
    path = Path(path)
    try:
        path.write_text(to_markdown(items), encoding="utf-8")
    except OSError as e:
        raise LegalRagError(f"cannot write {path}: {e.strerror or e}",
                            fix="choose a folder you can write to") from None
    return path
