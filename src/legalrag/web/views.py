"""HTML for the browser UI: answers with checked citations, source panels, index status,
upload previews. Pure functions from records to strings (escaped), gradio-free, so a test
can check the exact markup.

Anchors: the article retrieved at rank r for the n-th question of a session has the id
``lr-t{n}-h{r}`` in the sources panel; every link in an answer points at one of these.
Every citation in an answer carries its check result as a class (``lr-verified``,
``lr-not_retrieved``, ``lr-invented``, ``lr-repealed``, ``lr-invalid``) and, except for a
verified ``[n]`` marker, as visible Chinese text.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from legalrag.answer.assistant import (
    ABSTAIN_TEXT,
    ALL_UNCITED,
    CANDIDATES_INTRO,
    CANDIDATES_SHOWN,
    DISCLAIMER,
    EMPTY_ANSWER,
    PROVISION_INTRO,
    SECOND_INTRO,
    Answer,
)
from legalrag.answer.check import CheckedCitation, changed_copies, tidy_cut, uncited_cuts
from legalrag.answer.provision import Passage
from legalrag.records import Hit
from legalrag.vocab import (
    IN_FORCE,
    IN_FORCE_SCOPE,
    LABEL_NAMES,
    LABEL_SIGNS,
    MARKS,
    NOT_RETRIEVED,
    PROVISO_NAME,
    PROVISO_TITLE,
    QUOTED,
    SEVERITY,
    UNCITED_HEAD,
    UNCITED_NAME,
    UNCITED_TITLE,
    UNCITED_WARNING,
    VERIFIED,
    VERIFIED_SCOPE,
)
from legalrag.web.jobs import Job, stage_unit
from legalrag.web.kb import UpdateOutcome, UserFile
from legalrag.web.session import ChatSession, Exchange
from legalrag.web.uploads import UploadPlan

LABEL_TEXT = {VERIFIED: LABEL_SIGNS[VERIFIED] + LABEL_NAMES[VERIFIED], **MARKS}
SHOWN_QUESTION_CHARS = 2000  # a 20,000-character paste is not echoed back whole
NOTICE = ("本工具依据本机法库中的法律条文提供<b>法律信息</b>，不构成法律意见；"
          "具体情况请咨询执业律师。所有处理均在本机完成，问题不会发送到网络。")
DENSE_BUILDING = "语义索引仍在构建中：目前按关键词（BM25）和条文号精确查找检索，完成后自动切换。"
PART_NAMES = (("lookup", "条文号精确查找"), ("bm25", "关键词检索（BM25）"),
              ("dense", "语义检索（向量）"))
OPTIONAL_PARTS = {"tuned-queries": "查询编码器（已针对法条调优）"}


def esc(text: str) -> str:
    """HTML-escaped text (quotes too, so it is safe inside attributes)."""
    return html.escape(text, quote=True)


# The chat component renders its messages as Markdown (then sanitizes the HTML). Escaped
# text can still be Markdown: ![图](http://host/x.png?q=…) in an answer made the browser
# fetch from that host (issue 11). Text that a model, a statute file or a question wrote
# goes through md_esc: brackets (images, links, reference links), colons (http:, mailto:
# autolinks), www. and @ (bare autolinks) become character references, which show the
# same characters but are no Markdown.
_MD_ACTIVE = str.maketrans({"[": "&#91;", "]": "&#93;", ":": "&#58;", "@": "&#64;"})


def md_esc(text: str) -> str:
    """esc() for text shown in the chat (Markdown-rendered): nothing in it can become an
    image, iframe or link; it reads exactly as written.

    >>> md_esc("![图](http://127.0.0.1:9999/leak.png) [1]")
    '!&#91;图&#93;(http&#58;//127.0.0.1&#58;9999/leak.png) &#91;1&#93;'
    """
    return esc(text).translate(_MD_ACTIVE).replace("www.", "www&#46;")


def anchor(turn: int, rank: int) -> str:
    """Id of the rank-th retrieved article of the turn-th question in the sources panel."""
    return f"lr-t{turn}-h{rank}"


# ---------------------------------------------------------------- answers


def render_answer(answer: Answer, turn: int) -> str:
    """A generated answer: the model's text with every citation linked to its source and
    labelled by the check, then the notes and the disclaimer."""
    if answer.abstained:
        return render_abstain(answer, turn)
    raw = answer.raw_text
    by_span: dict[tuple[int, int], list[CheckedCitation]] = {}
    for c in answer.citations:
        if c.kind != "passage":  # a copied passage is not marked up; its citations are
            by_span.setdefault((c.start, c.end), []).append(c)
    spans: list[tuple[int, int, list[CheckedCitation]]] = [
        (s, e, group) for (s, e), group in by_span.items()]
    # words copied from a source with one of them changed: the whole stretch, labelled
    spans += changed_copies(raw, answer.citations)
    # a sentence that cites nothing is cut out, with its closing 。, and shown after the
    # answer in a folded section (two reviewers found nearly half of them wrong)
    cuts = uncited_cuts(raw, answer.uncited)
    spans += [(s, e, []) for s, e in cuts]
    out: list[str] = []
    pos = 0
    for start, end, group in sorted(spans, key=lambda t: (t[0], t[1])):
        if start < pos:  # overlapping spans: the first one wins
            continue
        out.append(md_esc(raw[pos:start]))
        if group:
            out.append(_citation(raw[start:end], group, answer, turn))
        elif out and out[-1][-1:] in "；;，," and raw[end:end + 1] in ("", "\n"):
            out[-1] = out[-1][:-1] + "。"  # ……交付之日；[cut] at a line's end
        pos = end
    out.append(md_esc(raw[pos:]))
    body = tidy_cut("".join(out)) or esc(ALL_UNCITED if cuts else EMPTY_ANSWER)
    parts = [f'<div class="lr-answer">\n\n{body}\n\n</div>']
    if answer.uncited:
        parts.append(_uncited_fold([raw[s:e] for s, e in answer.uncited]))
    if answer.notes:
        notes = "".join(f"<p>{md_esc(n)}</p>" for n in answer.notes)
        parts.append(f'<div class="lr-notes">{notes}</div>')
    parts.append(f'<div class="lr-disclaimer">{esc(DISCLAIMER)}</div>')
    return "\n\n".join(parts)


def _hit_anchor(answer: Answer, turn: int, c: CheckedCitation) -> str | None:
    """Where a citation's link points: its source, or the same article among the hits."""
    if c.source is not None and 1 <= c.source <= len(answer.sources):
        article_id = answer.sources[c.source - 1].article.id
        for h in answer.hits:
            if h.article.id == article_id:
                return anchor(turn, h.rank)
        return anchor(turn, c.source)
    if c.kind == "article" and c.label in (NOT_RETRIEVED, QUOTED):
        for h in answer.hits:
            a = h.article
            if (a.law, a.number, a.suffix) == (c.law, c.number, c.suffix):
                return anchor(turn, h.rank)
    return None


def _citation(text: str, group: Sequence[CheckedCitation], answer: Answer, turn: int) -> str:
    worst = max(group, key=lambda c: SEVERITY.get(c.label, 5))
    label = worst.label
    target = next((t for c in group if (t := _hit_anchor(answer, turn, c))), None)
    title = "；".join(dict.fromkeys(
        f"{LABEL_NAMES.get(c.label, c.label)}" + (f"：{c.note}" if c.note else "") for c in group))
    if label == VERIFIED:
        title += f"（{VERIFIED_SCOPE}）"
    classes = f"lr-cite lr-{label}" + (" lr-marker" if worst.kind == "marker" else "")
    attrs = f'class="{classes}" title="{esc(title)}" data-check="{label}"'
    link = (f'<a {attrs} href="#{target}">{md_esc(text)}</a>' if target
            else f"<span {attrs}>{md_esc(text)}</span>")
    proviso = next((c.proviso for c in group if c.proviso), "") if label == VERIFIED else ""
    hint = esc(PROVISO_TITLE.format(proviso=proviso))
    extra = (f'<span class="lr-badge lr-proviso" title="{hint}">{esc(PROVISO_NAME)}</span>'
             if proviso else "")
    if worst.kind == "marker" and label == VERIFIED:
        return link + extra  # a green [n] chip; the citation it follows carries the text label
    if label == QUOTED:
        return link  # the copied statute's own reference: a link to the article, no label
    return (f'{link}<span class="lr-badge lr-{label}">{esc(LABEL_TEXT.get(label, label))}</span>'
            + extra)


def _uncited_fold(sentences: Sequence[str]) -> str:
    """The sentences that cite nothing, after the answer and folded: the model's own
    conclusions, which the check cannot confirm, open only on a click."""
    items = "".join(f'<li class="lr-uncited" title="{esc(UNCITED_TITLE)}">{md_esc(s)}。</li>'
                    for s in sentences)
    return (f'<details class="lr-unchecked"><summary>'
            f'{esc(UNCITED_HEAD.format(n=len(sentences)))}'
            f'<span class="lr-badge lr-uncited">{esc(UNCITED_NAME)}</span></summary>'
            f'<p class="lr-notice">{esc(UNCITED_WARNING)}</p><ul>{items}</ul></details>')


def render_abstain(answer: Answer, turn: int) -> str:
    """The reply when nothing relevant enough was found: visibly not an answer."""
    rows = []
    for h in answer.hits[:CANDIDATES_SHOWN]:
        a = h.article
        where = " › ".join(a.path) or a.law_title
        rows.append(f'<li><a class="lr-cite" href="#{anchor(turn, h.rank)}">{md_esc(a.citation)}'
                    f"</a>（{md_esc(where)}）</li>")
    candidates = (f"<p>{esc(CANDIDATES_INTRO)}</p><ul>{''.join(rows)}</ul>" if rows else "")
    return (f'<div class="lr-abstain"><div class="lr-abstain-title">未作回答</div>'
            f"<p>{esc(ABSTAIN_TEXT)}</p>{candidates}"
            "<p>可以换一种说法、补充具体情形后再问。</p></div>\n\n"
            f'<div class="lr-disclaimer">{esc(DISCLAIMER)}</div>')


def render_provision(p: Passage, hits: Sequence[Hit], turn: int, first: bool = True) -> str:
    """The quoted provision at the top of an answer: its citation (linked to its card in
    the sources panel, where the same words are highlighted) and its words verbatim. A
    second one (first=False) is headed 另见, a related provision, not the basis."""
    target = next((anchor(turn, h.rank) for h in hits if h.article.id == p.article.id), None)
    cite = (f'<a class="lr-cite" href="#{target}">{md_esc(p.citation)}</a>' if target
            else md_esc(p.citation))
    lines = "".join(f"<p>{md_esc(line)}</p>" for line in p.shown)
    return (f'<div class="lr-provision"><div class="lr-provision-head">'
            f"{PROVISION_INTRO if first else SECOND_INTRO} {cite} 原文："
            f"</div><blockquote>{lines}</blockquote></div>")


def render_reading(sources: int, seconds: float) -> str:
    """What the model is doing before its first word, and about how long it takes."""
    return (f'<div class="lr-pending">正在阅读 {sources} 条条文，约 {max(round(seconds), 1)} 秒'
            "后开始作答……</div>")


def render_streaming(text: str) -> str:
    """The answer while it is being written (checked when it is complete)."""
    return f'<div class="lr-answer">\n\n{md_esc(text)}<span class="lr-cursor">▍</span>\n\n</div>'


# ---------------------------------------------------------------- sources panel


def render_hits(hits: Sequence[Hit], turn: int, given: Collection[str] | None = None,
                marked: Sequence[Passage] = ()) -> str:
    """Article cards: heading (law › 编/章/节 › 第N条), in-force status, full text.

    given: ids of the articles the model was shown (None while that is not known yet);
    marked: the quoted provisions, whose lines are highlighted in their articles' cards.
    """
    hl = {p.article.id: set(p.lines) for p in marked}
    cards = []
    for h in hits:
        a = h.article
        force = ('<span class="lr-force lr-in-force">现行有效</span>' if a.in_force else
                 '<span class="lr-force lr-not-in-force">非现行有效（旧版本或已失效）</span>')
        meta = [force, esc(a.version or "日期不详"), esc(a.level), esc(f"《{a.law_title}》")]
        if given is not None and a.id not in given:
            meta.append('<span class="lr-unused">未提供给模型</span>')
        via = {"lookup": "条文号", "bm25": "关键词", "dense": "语义"}
        found = "、".join(via.get(v, v) for v in sorted(h.ranks)) or "—"
        mine = hl.get(a.id, set())
        paras = "".join(
            f'<p><mark class="lr-hl">{esc(p)}</mark></p>' if p.strip() in mine
            else f"<p>{esc(p)}</p>" for p in a.text.split("\n") if p.strip())
        cards.append(
            f'<article class="lr-src" id="{anchor(turn, h.rank)}">'
            f'<div class="lr-src-head"><span class="lr-src-n">[{h.rank}]</span> '
            f'<span class="lr-src-heading">{esc(a.heading)}</span></div>'
            f'<div class="lr-src-meta">{" · ".join(meta)} · 检索：{esc(found)}</div>'
            f'<div class="lr-src-text">{paras}</div></article>')
    return "".join(cards)


# ---------------------------------------------------------------- knowledge base


def render_status(st: Mapping) -> str:
    """The index status panel: laws, articles, model, build time, live parts, running job."""
    rows = []
    if st.get("live"):
        parts = set(st.get("parts", ()))
        live = "".join(
            f'<li class="{"lr-on" if p in parts else "lr-off"}">'
            f'{"✓" if p in parts else "…"} {name}{"" if p in parts else "（构建中）"}</li>'
            for p, name in PART_NAMES)
        live += "".join(f'<li class="lr-on">✓ {esc(OPTIONAL_PARTS.get(p, p))}</li>'
                        for p in sorted(parts - {p for p, _ in PART_NAMES}))
        rows += [
            ("法律", f"{st.get('laws', 0):,} 部（{st.get('versions', 0):,} 个版本）"),
            ("条文", f"现行有效 {st.get('in_force', 0):,} 条 / 全部 {st.get('articles', 0):,} 条"),
            ("嵌入模型", esc(str(st.get("embedding", "")))),
            ("建立时间", esc(_local_time(st.get("built_at")))),
            ("可用部分", f'<ul class="lr-parts">{live}</ul>'),
        ]
    else:
        rows.append(("索引", f"暂不可用：{esc(str(st.get('error', '')))}"))
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    out = [f'<table class="lr-status">{table}</table>']
    job = st.get("job")
    if job is not None:
        out.append(render_job(job))
    if st.get("last_error"):
        out.append(f'<div class="lr-error">{esc(st["last_error"])}</div>')
    elif st.get("last_message"):
        out.append(f'<div class="lr-ok">{esc(st["last_message"])}</div>')
    return "".join(out)


def render_job(job: Job) -> str:
    frac = job.fraction
    pct = f"{frac * 100:.0f}%" if frac is not None else ""
    bar = (f'<div class="lr-bar"><div style="width:{frac * 100:.1f}%"></div></div>'
           if frac is not None else "")
    unit = stage_unit(job.stage)
    done = f"（{job.done:,}/{job.total:,} {unit}）" if job.total and unit else ""
    return (f'<div class="lr-job">正在进行：{esc(job.title)} — {esc(job.stage_name)}{done} {pct}'
            f"{bar}</div>")


def render_chat_notice(st: Mapping) -> str:
    """One line above the chat: which index answers, and whether dense is still building."""
    if not st.get("live"):
        return '<div class="lr-note">索引暂不可用（见“知识库”），正在准备……</div>'
    text = (f"法库：{st.get('laws', 0):,} 部法律，现行有效条文 {st.get('in_force', 0):,} 条。")
    if not st.get("dense_live"):
        job = st.get("job")
        progress = ""
        if job is not None and job.stage == "embed" and job.fraction is not None:
            progress = f"（已完成 {job.fraction * 100:.0f}%）"
        return f'<div class="lr-note">{text}{DENSE_BUILDING}{progress}</div>'
    return f'<div class="lr-index-ok">{text}</div>'


def render_plan(plan: UploadPlan | None, preview_articles: int = 3) -> str:
    """The preview of an upload: per file, the parsed law and first articles, or why it
    is refused."""
    if plan is None or not plan.checks:
        return ""
    out = []
    for c in plan.checks:
        if not c.ok:
            out.append(f'<div class="lr-upload lr-rejected"><b>✗ {esc(c.name)}</b>：不能添加。'
                       f'<div class="lr-reason">{esc(c.problem)}</div></div>')
            continue
        in_force = sum(a.in_force for a in c.articles)
        items = "".join(
            f"<li><b>{esc(a.label)}</b> {esc(_clip(a.text, 80))}</li>"
            for a in c.articles[:preview_articles])
        more = (f"<li>……共 {len(c.articles)} 条</li>" if len(c.articles) > preview_articles
                else "")
        notes = "".join(f'<div class="lr-note">{esc(n)}</div>' for n in c.notes)
        warns = "".join(f'<div class="lr-warn">注意：{esc(w)}</div>' for w in c.warnings)
        out.append(
            f'<div class="lr-upload lr-accepted"><b>✓ {esc(c.name)}</b> → {esc(c.target)}'
            f"<div>《{esc(c.title)}》，版本 {esc(c.version or '日期不详')}，"
            f"{len(c.articles)} 条（现行有效 {in_force} 条）</div>"
            f"{notes}{warns}<ul>{items}{more}</ul></div>")
    can = (f"可以添加 {len(plan.accepted)} 个文件" if plan.accepted
           else "没有可以添加的文件")
    head = (f"<p>{can}"
            + (f"，{len(plan.rejected)} 个文件不能添加（不会写入任何内容）"
               if plan.rejected else "")
            + "。</p>")
    return head + "".join(out)


def render_outcome(outcome: UpdateOutcome) -> str:
    done = "、".join(outcome.added or outcome.removed)
    verb = "已添加" if outcome.added else "已删除"
    return (f'<div class="lr-ok">{verb}：{esc(done)}。索引已更新并已生效'
            f"（{outcome.seconds:.1f} 秒，共 {outcome.articles:,} 条）。</div>")


def render_error(message: str) -> str:
    return f'<div class="lr-error">⚠ {md_esc(message)}</div>'


def render_user_files(files: Sequence[UserFile]) -> str:
    if not files:
        return "<p>还没有用户上传的法律。</p>"
    rows = "".join(
        f"<tr><td>{esc(f.source)}</td><td>{esc(f.law or '（未编入索引）')}</td>"
        f"<td>{esc(f.version or '—')}</td><td>{f.articles}</td>"
        f"<td>{'现行有效' if f.in_force else '非现行'}</td></tr>" for f in files)
    return ('<table class="lr-files"><tr><th>文件</th><th>法律</th><th>版本</th><th>条数</th>'
            f"<th>状态</th></tr>{rows}</table>")


def _clip(text: str, n: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= n else text[:n] + "…"


def _local_time(iso: object) -> str:
    if not iso:
        return "—"
    try:
        return datetime.fromisoformat(str(iso)).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(iso)


# ---------------------------------------------------------------- the chat tab

def render_question(question: str) -> str:
    q = question.strip()
    if not q:
        return '<span class="lr-empty">（空白问题）</span>'
    if len(q) > SHOWN_QUESTION_CHARS:
        return md_esc(q[:SHOWN_QUESTION_CHARS]) + f"…（共 {len(q):,} 字）"
    return md_esc(q)


def render_exchange(ex: Exchange) -> str:
    """The assistant's message for one exchange, in its current state."""
    if ex._html:
        return ex._html
    head = []
    quoted = ex.answer.provisions if ex.answer is not None else ex.provisions
    if ex.rewritten and ex.rewritten != ex.question.strip():
        head.append('<div class="lr-rewrite">检索用语（结合上文改写）：'
                    f"{md_esc(ex.rewritten)}</div>")
    if not ex.dense_live:
        head.append(f'<div class="lr-note">{esc(DENSE_BUILDING)}</div>')
    # what the question cites that the corpus cannot back: said before anything else
    premise = ex.answer.premise if ex.answer is not None else ex.premise
    head += [f'<div class="lr-premise">{esc(p)}</div>' for p in premise]
    found = f"已检索到 {len(ex.hits)} 条相关条文（见右侧“来源”）"
    if ex.state == "retrieving":
        body = '<div class="lr-pending">正在检索相关法条……</div>'
    elif ex.state == "waiting" and ex.reading is not None:
        body = render_reading(*ex.reading)
    elif ex.state == "waiting":
        body = f'<div class="lr-pending">{found}，正在生成回答……</div>'
    elif ex.state == "queued":
        body = (f'<div class="lr-queue">排队中：前面还有 {ex.ahead} 个问题正在由模型回答，'
                f"轮到您时自动开始。{found}，可以先阅读。</div>")
    elif ex.state == "writing":
        body = render_streaming(ex.text)
    elif ex.state == "done" and ex.answer is not None:
        body = render_answer(ex.answer, ex.n)
    elif ex.state == "stopped":
        body = (render_streaming(ex.text).replace('<span class="lr-cursor">▍</span>', "")
                + '\n\n<div class="lr-note">（已停止）</div>')
    else:
        body = render_error(ex.error or "出错了")
    if ex.state != "error":
        head += [render_provision(p, ex.hits, ex.n, i == 0) for i, p in enumerate(quoted)]
    html = "\n\n".join([*head, body])
    if ex.finished:
        ex._html = html
    return html


def render_sources(session: ChatSession) -> str:
    """The sources panel: the latest question's articles open, earlier ones folded."""
    with_hits = [e for e in session.exchanges if e.hits]
    if not with_hits:
        return ('<div class="lr-sources-empty">提问后，检索到的法律条文会先显示在这里，'
                "可以在模型写回答时阅读原文。</div>")
    out = []
    for i, ex in enumerate(reversed(with_hits)):
        given = ({s.article.id for s in ex.answer.sources}
                 if ex.answer and not ex.answer.abstained else None)
        marked = ex.answer.provisions if ex.answer is not None else ex.provisions
        q = ex.question.strip()
        q = q if len(q) <= 40 else q[:40] + "…"
        title = f"第 {ex.n} 问：{esc(q)}"
        if ex.rewritten and ex.rewritten != ex.question.strip():
            title += f'<div class="lr-rewrite">检索用语：{esc(ex.rewritten)}</div>'
        cards = render_hits(ex.hits, ex.n, given, marked)
        if i == 0:
            out.append(f'<section class="lr-turn"><div class="lr-turn-q">{title}</div>'
                       f"{cards}</section>")
        else:
            out.append(f'<details class="lr-turn"><summary>{title}（{len(ex.hits)} 条）'
                       f"</summary>{cards}</details>")
    return "".join(out)


# ---------------------------------------------------------------- the 核查引用 tab

CHECK_EMPTY = ("粘贴一段文字（合同、判决书、其他聊天机器人的回答……），点击“核查”，"
               "逐条标出其中引用的法律条文是否现行有效、已失效、法库中不存在或无法识别。")
CHECK_SCOPE = f"{IN_FORCE_SCOPE}；请点击引用对照原文。"


def render_check(text: str, checked: Sequence[CheckedCitation]) -> str:
    """Pasted text with every citation labelled inline, then one folded card per citation
    with the article it names (the 款 or 项 cited, where one is); clicking a citation
    opens and shows its card (the page script follows ``#lr-c…`` links)."""
    if not text.strip():
        return f'<div class="lr-check-empty">{esc(CHECK_EMPTY)}</div>'
    out: list[str] = []
    cards: list[str] = []
    pos = 0
    counts: dict[str, int] = {}
    for i, c in enumerate(checked, 1):
        counts[c.label] = counts.get(c.label, 0) + 1
        if c.start < pos:
            continue
        target = f"lr-c{i}"
        sign = f"{LABEL_SIGNS.get(c.label, '')}{LABEL_NAMES.get(c.label, c.label)}"
        title = sign + (f"：{c.note}" if c.note else "")
        out.append(esc(text[pos:c.start]))
        out.append(f'<a class="lr-cite lr-{c.label}" data-check="{c.label}" '
                   f'title="{esc(title)}" href="#{target}">{esc(text[c.start:c.end])}</a>'
                   f'<span class="lr-badge lr-{c.label}">{esc(sign)}</span>')
        pos = c.end
        body = "".join(f"<p>{esc(p)}</p>" for p in c.cited_text.split("\n") if p.strip())
        source = (f'<div class="lr-src-meta">{esc(c.article.law_title)} · '
                  f"{esc(c.article.version or '日期不详')} · "
                  f"{'现行有效' if c.article.in_force else '非现行有效'}</div>"
                  if c.article is not None else "")
        cards.append(
            f'<details class="lr-src lr-check-card" id="{target}"><summary>'
            f'<span class="lr-badge lr-{c.label}">{esc(sign)}</span> '
            f"<b>{esc(c.raw)}</b>" + (f"：{esc(c.note)}" if c.note else "") + "</summary>"
            f'{source}<div class="lr-src-text">{body or esc("（法库中没有可显示的条文）")}</div>'
            "</details>")
    out.append(esc(text[pos:]))
    if checked:
        summary = "，".join(f"{LABEL_NAMES.get(k, k)} {n}" for k, n in counts.items())
        head = f"共 {len(checked)} 处引用：{esc(summary)}。点击引用查看条文。"
        if IN_FORCE in counts:
            head += f'</div><div class="lr-check-scope">{esc(CHECK_SCOPE)}'
    else:
        head = "没有找到法律条文引用（如《劳动合同法》第四十七条）。"
    return (f'<div class="lr-check-summary">{head}</div>'
            f'<div class="lr-check-text">{"".join(out)}</div>'
            f'<div class="lr-check-cards">{"".join(cards)}</div>')
