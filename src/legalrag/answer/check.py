"""Checking the citations in a generated answer against the sources and the corpus.

Every citation the model writes is extracted and labelled:

- ``verified``: one of the sources it was given (an ``[n]`` marker within 1..len(sources)).
- ``not_retrieved``: a real, in-force article of the corpus that was not among the sources.
- ``invented``: not in the corpus — an unknown law, or an article number the law lacks.
- ``repealed``: a law or article that is no longer in force, or a law that an in-force
  article of the corpus repealed (民法典 第一千二百六十条: 《合同法》…同时废止).
- ``invalid``: cannot be checked as written — an ``[n]`` marker beyond the sources, a
  malformed article number, a reference such as 本法第十条 that names no law.

The table of repealed laws is derived from the corpus text, not hard-coded: statutes name
the laws they replace in their final articles (…《X》同时废止 / 即行废止).

    >>> facts = CorpusFacts.from_articles(articles)         # doctest: +SKIP
    >>> [c.label for c in check_answer(text, sources, facts)]  # doctest: +SKIP
    ['verified', 'repealed']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from legalrag.citations import LawNames, find_citations, normalize_law_name
from legalrag.numerals import article_label, to_chinese
from legalrag.records import Article
from legalrag.vocab import INVALID, INVENTED, MARKS, NOT_RETRIEVED, REPEALED, VERIFIED

_MARKER_RE = re.compile(r"[\[［【]\s*(?:来源\s*)?(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\s*[\]］】]")
_LOOSE_ARTICLE_RE = re.compile(r"《[^《》\n]{1,60}》\s*第[^条\s，。；、]{1,12}条")
_LAW_MENTION_RE = re.compile(r"《(?P<law>[^《》\n]{1,60})》")
_REPEAL_CLAUSE_RE = re.compile(r"[^。；;]*废止(?=[。；;]|$)")
# References that name no law: they cannot be checked, so they are never passed as verified.
_DEICTIC = ("本法", "该法", "此法", "上述法", "本条例", "该条例", "本规定", "该规定",
            "本办法", "该办法", "本解释", "该解释")


@dataclass(frozen=True, slots=True)
class Repeal:
    """A law the corpus says was repealed, and the in-force article that says so."""

    law: str  # normalized name of the repealed law: 合同法
    by: Article  # 《民法典》第一千二百六十条

    @property
    def note(self) -> str:
        return f"《{self.law}》已被《{self.by.law}》废止（见{self.by.citation}）"


@dataclass(frozen=True)
class CorpusFacts:
    """What the checker needs to know about the corpus: law names, which articles exist
    and are in force, and which laws were repealed. Built once from the article list."""

    names: LawNames
    articles: dict[tuple[str, int, int], tuple[Article, ...]]
    laws_in_force: frozenset[str]
    repeals: dict[str, Repeal]

    @classmethod
    def from_articles(cls, articles: Iterable[Article]) -> CorpusFacts:
        by_key: dict[tuple[str, int, int], list[Article]] = {}
        laws: set[str] = set()
        in_force: set[str] = set()
        all_articles = list(articles)
        for a in all_articles:
            by_key.setdefault((a.law, a.number, a.suffix), []).append(a)
            laws.add(a.law)
            if a.in_force:
                in_force.add(a.law)
        return cls(names=LawNames(sorted(laws)),
                   articles={k: tuple(v) for k, v in by_key.items()},
                   laws_in_force=frozenset(in_force),
                   repeals=find_repeals(all_articles))

    def lookup(self, law: str, number: int, suffix: int = 0) -> tuple[Article, ...]:
        return self.articles.get((law, number, suffix), ())

    def repeal_of(self, written: str) -> Repeal | None:
        """The repeal of a law as written (with words in front, as bare citations have)."""
        name = normalize_law_name(written)
        for i in range(len(name) - 1):
            if name[i:] in self.repeals:
                return self.repeals[name[i:]]
        return None


def find_repeals(articles: Iterable[Article]) -> dict[str, Repeal]:
    """Laws that in-force articles declare repealed (…《X》同时废止), by normalized name.

    A name that is still the title of an in-force law of the corpus is skipped: a law is
    often replaced by a new law of the same name (1993 and 2015 国家安全法).
    """
    articles = list(articles)
    current: set[str] = set()
    for a in articles:
        if a.in_force:
            current.add(normalize_law_name(a.law))
            current.add(normalize_law_name(a.law_title))
    out: dict[str, Repeal] = {}
    for a in articles:
        if not a.in_force or "废止" not in a.text:
            continue
        for clause in _REPEAL_CLAUSE_RE.findall(a.text):
            for m in _LAW_MENTION_RE.finditer(clause):
                name = normalize_law_name(m.group("law"))
                if name in current or name in out:
                    continue
                out[name] = Repeal(name, a)
    return out


@dataclass(frozen=True, slots=True)
class CheckedCitation:
    """One citation found in an answer, with its label and a note for people."""

    kind: str  # article (《X》第N条), law (《X》 alone) or marker ([n])
    raw: str
    start: int
    end: int
    label: str
    law: str = ""  # corpus key when resolved, else the law as written
    number: int = 0
    suffix: int = 0
    source: int | None = None  # the source number it matches
    note: str = ""

    @property
    def citation(self) -> str:
        if self.kind == "marker":
            return f"[{self.source or self.number}]"
        if self.kind == "law":
            return f"《{self.law}》"
        if self.number < 1:  # a malformed number (第十十条) has no label: show it as written
            return self.raw
        return f"《{self.law}》{article_label(self.number, self.suffix)}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "raw": self.raw, "start": self.start, "end": self.end,
                "label": self.label, "law": self.law, "number": self.number,
                "suffix": self.suffix, "source": self.source, "note": self.note}


def check_answer(text: str, sources: Sequence[Article], facts: CorpusFacts
                 ) -> list[CheckedCitation]:
    """Every citation in text, labelled, in order of position. sources[i] is source i+1."""
    out: list[CheckedCitation] = []
    taken: list[tuple[int, int]] = []
    refs = find_citations(text)
    anchors = _law_anchors(text, refs, facts)
    for ref in refs:
        # A continuation (…和第四十条) starts at its connector; the raw text does not.
        raw, start, context = ref.raw, ref.end - len(ref.raw), None
        deictic = _deictic(ref.law, facts)
        if deictic:
            # 本法第三十九条 (often copied from an article's own text) means the law named
            # last before it in the answer; the citation starts at 本法, not at the words
            # the title pattern swept up in front of it (除劳动者有本法…).
            context = next((law for pos, law in reversed(anchors) if pos < ref.start), None)
            i = raw.find(deictic)
            if i > 0:
                raw, start = raw[i:], start + i
        out.append(_check_article(raw, start, ref.end, ref.law, ref.number, ref.suffix,
                                  ref.paragraph, sources, facts, context))
        taken.append((start, ref.end))
    for m in _LOOSE_ARTICLE_RE.finditer(text):
        if not _overlaps(m.start(), m.end(), taken):
            out.append(CheckedCitation("article", m.group(0), m.start(), m.end(), INVALID,
                                       law=m.group(0)[1:m.group(0).index("》")],
                                       note="条号写法有误，无法核对"))
            taken.append((m.start(), m.end()))
    for m in _LAW_MENTION_RE.finditer(text):
        if not _overlaps(m.start(), m.end(), taken):
            out.append(_check_law(m.group(0), m.start(), m.end(), m.group("law"), sources,
                                  facts))
    for m in _MARKER_RE.finditer(text):
        for num in re.split(r"\s*[,，、]\s*", m.group(1)):
            n = int(num)
            if 1 <= n <= len(sources):
                out.append(CheckedCitation("marker", m.group(0), m.start(), m.end(), VERIFIED,
                                           law=sources[n - 1].law, number=n, source=n,
                                           note=sources[n - 1].citation))
            else:
                out.append(CheckedCitation("marker", m.group(0), m.start(), m.end(), INVALID,
                                           number=n, note=f"没有来源[{n}]"))
    out.sort(key=lambda c: (c.start, c.end))
    return _check_marker_agreement(text, out, sources)


def _check_marker_agreement(text: str, checked: list[CheckedCitation],
                            sources: Sequence[Article]) -> list[CheckedCitation]:
    """A marker right after an article citation ("《X》第N条[2]") claims that source 2 is
    that article. When it is not, the marker is invalid: a small model sometimes numbers
    its sources wrongly, and a reader would trust the wrong text."""
    articles = [c for c in checked if c.kind == "article"]
    out = []
    for c in checked:
        if c.kind == "marker" and c.label == VERIFIED:
            cited = next((a for a in articles if a.end <= c.start
                          and not text[a.end:c.start].strip()), None)
            group = {m.source for m in checked if m.kind == "marker" and m.start == c.start}
            if cited is not None and cited.source not in group:
                src = sources[c.number - 1]
                c = replace(c, label=INVALID,
                            note=f"来源[{c.number}]是{src.citation}，与所引{cited.citation}不符")
        out.append(c)
    return out


def _overlaps(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(start < e and s < end for s, e in spans)


def _deictic(written: str, facts: CorpusFacts) -> str:
    """The 本法-like word a law as written ends in, when it names no law itself; else ''."""
    if facts.names.resolve(written) is not None or facts.repeal_of(written) is not None:
        return ""
    name = normalize_law_name(written)
    return next((d for d in _DEICTIC if name.endswith(d)), "")


def _law_anchors(text: str, refs: Sequence, facts: CorpusFacts) -> list[tuple[int, str]]:
    """(position, law key) of every citation or 《law》 mention that names a corpus law."""
    out = [(r.start, law) for r in refs if (law := facts.names.resolve(r.law))]
    out += [(m.start(), law) for m in _LAW_MENTION_RE.finditer(text)
            if (law := facts.names.resolve(m.group("law")))]
    return sorted(out)


def _check_article(raw: str, start: int, end: int, written: str, number: int, suffix: int,
                   paragraph: int | None, sources: Sequence[Article], facts: CorpusFacts,
                   context: str | None = None) -> CheckedCitation:
    """Label one article citation; context is the law a 本法-like reference points to."""
    prefix = ""

    def cite(label: str, law: str, note: str, source: int | None = None) -> CheckedCitation:
        return CheckedCitation("article", raw, start, end, label, law, number, suffix,
                               source, prefix + note)

    label_text = article_label(number, suffix)
    law = facts.names.resolve(written)
    if law is None:
        name = normalize_law_name(written)
        repeal = facts.repeal_of(written)
        if repeal is not None:
            return cite(REPEALED, repeal.law, repeal.note)
        if not name.endswith(_DEICTIC):
            return cite(INVENTED, name, f"法库中没有《{name}》")
        if context is None:
            return cite(INVALID, name, "未写明法律名称，无法核对")
        law, prefix = context, f"按上文指《{context}》；"
    for n, a in enumerate(sources, 1):
        if (a.law, a.number, a.suffix) == (law, number, suffix):
            if paragraph and paragraph > _paragraphs(a):
                return cite(INVENTED, law, f"{a.citation}没有第{to_chinese(paragraph)}款", n)
            return cite(VERIFIED, law, f"来源[{n}]", n)
    versions = facts.lookup(law, number, suffix)
    if not versions:
        return cite(INVENTED, law, f"《{law}》没有{label_text}")
    if not any(v.in_force for v in versions) or law not in facts.laws_in_force:
        repeal = facts.repeal_of(law)
        return cite(REPEALED, law, repeal.note if repeal else f"《{law}》{label_text}已失效")
    if paragraph and paragraph > max(_paragraphs(v) for v in versions):
        return cite(INVENTED, law, f"《{law}》{label_text}没有第{to_chinese(paragraph)}款")
    return cite(NOT_RETRIEVED, law, "法库中有此条，但不在检索来源中")


def _paragraphs(article: Article) -> int:
    # Paragraphs (款) are the text's lines, minus the 项 items (（一）…) that belong to one.
    lines = [ln for ln in article.text.split("\n") if ln.strip()]
    return sum(1 for ln in lines if not re.match(r"^[（(][一二三四五六七八九十]+[）)]", ln))


def _check_law(raw: str, start: int, end: int, written: str, sources: Sequence[Article],
               facts: CorpusFacts) -> CheckedCitation:
    law = facts.names.resolve(written)
    name = normalize_law_name(written)
    if law is None:
        repeal = facts.repeal_of(written)
        if repeal is not None:
            return CheckedCitation("law", raw, start, end, REPEALED, repeal.law,
                                   note=repeal.note)
        return CheckedCitation("law", raw, start, end, INVENTED, name,
                               note=f"法库中没有《{name}》")
    if law not in facts.laws_in_force:
        repeal = facts.repeal_of(law)
        return CheckedCitation("law", raw, start, end, REPEALED, law,
                               note=repeal.note if repeal else f"《{law}》已失效")
    for n, a in enumerate(sources, 1):
        if a.law == law:
            return CheckedCitation("law", raw, start, end, VERIFIED, law, source=n,
                                   note=f"来源[{n}]")
    return CheckedCitation("law", raw, start, end, NOT_RETRIEVED, law,
                           note="法库中有此法，但不在检索来源中")


def annotate(text: str, checked: Sequence[CheckedCitation]) -> str:
    """text with a visible mark after every citation that is not verified."""
    out: list[str] = []
    pos = 0
    marked = -1
    for c in sorted(checked, key=lambda c: c.end):
        if c.label == VERIFIED or c.end <= marked:  # one mark per span ([1,9] yields two)
            continue
        out.append(text[pos:c.end])
        out.append(MARKS[c.label])
        pos = marked = c.end
    out.append(text[pos:])
    return "".join(out)


def repeal_notes(checked: Sequence[CheckedCitation]) -> list[str]:
    """One sentence per repealed law or article the answer names, without repeats."""
    seen: dict[str, None] = {}
    for c in checked:
        if c.label == REPEALED and c.note:
            seen.setdefault(c.note + "。", None)
    return list(seen)
