"""Checking the citations in a text against the corpus, and in an answer against its sources.

One function, :func:`check_citations`, serves the answer check (with the sources the model
was given), ``legalrag check`` and the browser's 核查引用 tab (without sources). Every
citation is extracted and labelled:

- ``verified``: one of the sources, and the sentence citing it is supported by it (the
  ``support`` scorer; without one, being among the sources suffices, as before issue 11).
- ``unsupported``: one of the sources, but the scorer could not confirm the sentence (shown
  as 未能核实此说法: the scorer is strict, and many such sentences are right).
- ``in_force``: (no sources) an article of the corpus in the version in force.
- ``not_retrieved``: a real, in-force article of the corpus that was not among the sources.
- ``invented``: not in the corpus: an unknown law (a title in 《》 must match exactly or by
  a known alias: 《日本劳动法》 is no 劳动法), an article number the law lacks, or a
  paragraph (款) or item (项) the article lacks.
- ``repealed``: a law or article that is no longer in force, or a law that an in-force
  article of the corpus repealed (民法典 第一千二百六十条: 《合同法》…同时废止).
- ``misquoted``: text in “…” attributed to the article does not occur in it.
- ``unresolved``: 本法第十条 and the like where no source the sentence copies and no
  citation before it says which law is meant; not an error, but nothing checked either.
- ``invalid``: cannot be read as written: a malformed number (第十十条, 第二百一条), an
  ``[n]`` marker beyond the sources or naming another article than the citation it follows.

Text copied from a source (a run of COPY_CHARS characters, punctuation aside) counts as
citing it: 本法 inside it means the source's law, and a ``passage`` entry records it.

The table of repealed laws is derived from the corpus text, not hard-coded: statutes name
the laws they replace in their final articles (…《X》同时废止 / 即行废止).

    >>> facts = CorpusFacts.from_articles(articles)                    # doctest: +SKIP
    >>> [c.label for c in check_answer(text, sources, facts, support)]  # doctest: +SKIP
    ['verified', 'repealed']
    >>> [c.label for c in check_text("《劳动法》第三十六条", facts)]      # doctest: +SKIP
    ['in_force']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from legalrag.answer.support import copy_change, left_out, omitted_proviso
from legalrag.citations import (
    CitationRef,
    LawNames,
    find_citations,
    named_law,
    normalize_law_name,
    trigger_suffixes,
)
from legalrag.numerals import article_label, to_chinese
from legalrag.records import Article
from legalrag.vocab import (
    IN_FORCE,
    INVALID,
    INVENTED,
    MARKS,
    MISQUOTED,
    NOT_RETRIEVED,
    PROVISO_MARK,
    QUOTED,
    REPEALED,
    UNCITED_MARK,
    UNRESOLVED,
    UNSUPPORTED,
    VERIFIED,
)

# Whether a sentence says something the cited article says: (sentence, article) -> bool.
# The answer stage's scorer (answer/support.py) provides one; see check_citations.
Support = Callable[[str, Article], bool]

_MARKER_RE = re.compile(r"[\[［【]\s*(?:来源\s*)?(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\s*[\]］】]")
_LOOSE_ARTICLE_RE = re.compile(r"《[^《》\n]{1,60}》\s*第[^条\s，。；、]{1,12}条")
_LAW_MENTION_RE = re.compile(r"《(?P<law>[^《》\n]{1,60})》")
_REPEAL_CLAUSE_RE = re.compile(r"[^。；;]*废止(?=[。；;]|$)")
_ITEM_LINE_RE = re.compile(r"^\s*[（(][一二三四五六七八九十]+[）)]")
_QUOTE_RE = re.compile(r"[“「]([^“”「」\n]{1,800})[”」]")
_ELLIPSIS_RE = re.compile(r"…+|\.{3,}")
_NOT_WORD_RE = re.compile(r"[\W_]+")
_WRITTEN_NUMBER_RE = re.compile(r"第\s*([^第条\s]+)\s*条")
_SENTENCE_ENDS = "。！？!?；;\n"
_LEADING_MARKERS_RE = re.compile(rf"(?:\s|{_MARKER_RE.pattern})+")  # [1] after a 。
_HAN_RE = re.compile(r"[\u4e00-\u9fff]")
_ENUMERATOR_RE = re.compile(r"\s*(?:\d{1,2}[.、．)）]|[（(][一二三四五六七八九十\d]{1,3}[）)]|"
                            r"[一二三四五六七八九十]{1,3}、)\s*")
UNCITED_MIN_HAN = 6
# ... except a bare verdict, the answer to the question in a word or two (不可以。是的。
# 不合法。): a browser session saw 不可以。 shown unmarked before a sentence with a ✓.
_VERDICT_RE = re.compile(r"(?:[不没无非]|不是|并不)?(?:可以|能够?|行|是|会|合法|违法|有效|"
                         r"需要|要|用|应当|应该|算|构成|属于|有权|对|犯法|违规)(?:的|了|啊|呀)?")
# A sentence built on a copy with words of its own that deny something (没有涉及，因为没有
# 提供借据、收据、欠条等债权凭证…, where the asker had said there was a 借条) says what
# the source does not, however few those words are.
_OWN_DENIAL_RE = re.compile(r"没有|不|未|无|非|否")
# A verified article's note. Notes name a source by its citation, not by its number among
# the model's sources: the sources panel numbers the articles by retrieval rank, and the
# quoted articles come first among the model's sources, so the two numbers differ. Only a
# marker the model wrote ([2]) is named by number, as the answer shows it.
SOURCE_NOTE = "在所给来源中"
# A sentence that copies a source but says this much of its own beside the copy (如果公司拖欠
# 工资三个月，劳动者可以辞职，但前提是 + words of another rule) is the model's own claim,
# which the copy does not cover.
OWN_WORDS_MIN_HAN = 12
_LABEL_RE = re.compile(r"[^：:，,]{1,20}[：:]")
# References that name no law: they mean the law of the passage they are copied from, or
# of the citation before them.
_DEICTIC = ("本法", "该法", "此法", "上述法", "本条例", "该条例", "本规定", "该规定",
            "本办法", "该办法", "本解释", "该解释", "本决定", "该决定")
# A run this long (punctuation and whitespace aside) shared with a source is a copy: 16
# characters of statute wording do not recur by chance in a paraphrase.
COPY_CHARS = 16
# Shorter quotations are terms set off for emphasis (“经济补偿”), not quoted text.
MIN_QUOTE_CHARS = 6


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
        for versions in by_key.values():  # in force first, then newest first
            versions.sort(key=lambda a: (a.in_force, a.version), reverse=True)
        return cls(names=LawNames(sorted(laws)),
                   articles={k: tuple(v) for k, v in by_key.items()},
                   laws_in_force=frozenset(in_force),
                   repeals=find_repeals(all_articles))

    @classmethod
    def from_index(cls, index_dir: Path) -> CorpusFacts:
        """Facts from the live index's article list: no embedding model, no BM25 load, so
        ``legalrag check`` answers in about a second."""
        from legalrag.errors import IndexCorruptError
        from legalrag.index.store import ARTICLES, REBUILD_HINT, IndexStore, read_articles

        path = IndexStore(index_dir).current() / ARTICLES
        try:
            return cls.from_articles(read_articles(path))
        except (OSError, ValueError, TypeError, KeyError) as e:  # JSONDecodeError is a ValueError
            raise IndexCorruptError(f"cannot read the index's article list {path}: {e}",
                                    fix=f"run `{REBUILD_HINT}`") from None

    def lookup(self, law: str, number: int, suffix: int = 0) -> tuple[Article, ...]:
        """Every version of one article, the one in force first."""
        return self.articles.get((law, number, suffix), ())

    def repeal_of(self, written: str, *, bracketed: bool = False) -> Repeal | None:
        """The repeal of a law as written: by its exact name or, for a bare title, by the
        name after a trigger word (根据合同法), never by a shorter name inside it."""
        name = normalize_law_name(written)
        if name in self.repeals or bracketed:
            return self.repeals.get(name)
        return next((self.repeals[c] for c in trigger_suffixes(name) if c in self.repeals),
                    None)


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
    """One citation found in a text, with its label and a note for people.

    kind: ``article`` (《X》第N条), ``law`` (《X》 alone), ``marker`` ([n]) or ``passage``
    (text copied from source n: not a citation written, but it counts as citing).
    """

    kind: str
    raw: str
    start: int
    end: int
    label: str
    law: str = ""  # corpus key when resolved, else the law as written
    number: int = 0
    suffix: int = 0
    source: int | None = None  # the source number it matches
    note: str = ""
    paragraph: int | None = None  # 第M款
    item: int | None = None  # 第K项
    article: Article | None = None  # the article it names (the version in force first)
    # A ✓ sentence that copies a rule the article goes on to qualify (support.omitted_proviso):
    # the qualification it leaves out, shown beside the ✓.
    proviso: str = ""

    @property
    def citation(self) -> str:
        if self.kind == "marker":
            return f"[{self.source or self.number}]"
        if self.kind == "law":
            return f"《{self.law}》"
        if self.number < 1:  # a malformed number (第十十条) has no label: show it as written
            return self.raw
        out = f"《{self.law}》{article_label(self.number, self.suffix)}"
        out += f"第{to_chinese(self.paragraph)}款" if self.paragraph else ""
        return out + (f"第{to_chinese(self.item)}项" if self.item else "")

    @property
    def cited_text(self) -> str:
        """The words cited: the 款 (or 项) when one is named, else the whole article."""
        if self.article is None:
            return ""
        return cited_part(self.article, self.paragraph, self.item) or self.article.text

    def to_dict(self) -> dict:
        return {"kind": self.kind, "raw": self.raw, "start": self.start, "end": self.end,
                "label": self.label, "law": self.law, "number": self.number,
                "suffix": self.suffix, "paragraph": self.paragraph, "item": self.item,
                "source": self.source, "note": self.note,
                "article_id": self.article.id if self.article else None,
                "proviso": self.proviso}


# ---------------------------------------------------------------- structure of an article


def paragraphs(article: Article) -> list[tuple[str, list[str]]]:
    """The article's 款, each with its 项: text lines are 款, except lines that start with
    （一） etc., which are items of the 款 before them (records.Article keeps both as lines).
    """
    out: list[tuple[str, list[str]]] = []
    for line in (ln.strip() for ln in article.text.split("\n")):
        if not line:
            continue
        if _ITEM_LINE_RE.match(line) and out:
            out[-1][1].append(line)
        else:
            out.append((line, []))
    return out


def cited_part(article: Article, paragraph: int | None, item: int | None) -> str | None:
    """The text of 第M款 (with its items) or of its 第K项; None when the article lacks it.
    Without 第M款, 第K项 means an item of the first 款 that lists items."""
    paras = paragraphs(article)
    if paragraph is not None and not 1 <= paragraph <= len(paras):
        return None
    if item is None:
        if paragraph is None:
            return article.text
        head, items = paras[paragraph - 1]
        return "\n".join([head, *items])
    if paragraph is None:
        items = next((its for _, its in paras if its), [])
    else:
        items = paras[paragraph - 1][1]
    return items[item - 1] if 1 <= item <= len(items) else None


# ---------------------------------------------------------------- sentences and copies


def sentence_at(text: str, start: int, end: int) -> str:
    """The sentence a citation or marker belongs to (what its claim is).

    A sentence ends at 。！？； or a line break. An ``[n]`` marker written after the full
    stop (……一个月。[1]) closes the sentence before it.

    >>> sentence_at("甲。试用期不得超过六个月[1]。乙。", 12, 15)
    '试用期不得超过六个月[1]。'
    >>> sentence_at("甲。试用期不得超过六个月。[1]乙", 13, 16)
    '试用期不得超过六个月。'
    """
    left, right = sentence_span(text, start, end)
    return text[left:right].strip()


def sentence_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Where sentence_at's sentence lies in text (its closing 。 included)."""
    before = text[:start].rstrip()
    if _MARKER_RE.fullmatch(text[start:end]) and before and before[-1] in _SENTENCE_ENDS:
        left = right = len(before)  # the sentence that ends right before the marker
        left -= 1
    else:
        left, right = start, end
        while right < len(text) and text[right] not in _SENTENCE_ENDS:
            right += 1
        if right < len(text) and text[right] != "\n":
            right += 1
    while left > 0 and text[left - 1] not in _SENTENCE_ENDS:
        left -= 1
    return left, right


def uncited_sentences(text: str, checked: Sequence[CheckedCitation],
                      sources: Sequence[Article] = ()) -> list[tuple[int, int]]:
    """(start, end) of every sentence of an answer that cites nothing, its closing 。 left out.

    A ✓ covers the sentence of its citation and no more, so the sentence after it (因此，
    合同仍然有效。) was shown as if it were covered too; in the dev answers such sentences
    were most often the model's own conclusion, and often a wrong one. These sentences get
    their own mark (vocab.UNCITED_MARK). Not marked: an answer that cites nothing at all
    (its note says so), a sentence of fewer than UNCITED_MIN_HAN Chinese characters (一、,
    例外情况：), a sentence whose words all occur in a source (a copy too short for
    copied_passages; a list item's number aside), a line that only introduces what follows
    (例外情况包括：), and a sentence with a citation or a [n] marker. A sentence with a copied
    passage is not marked unless it says OWN_WORDS_MIN_HAN characters of its own beside the
    copy (a list heading before it aside): such a claim is the model's, not the source's.

    >>> t = "根据《劳动法》第三条，劳动者享有平等就业的权利。因此，公司不得拒绝录用女性。"
    >>> c = CheckedCitation("article", "《劳动法》第三条", 2, 10, VERIFIED)
    >>> [t[s:e] for s, e in uncited_sentences(t, [c])]
    ['因此，公司不得拒绝录用女性']
    """
    if not checked:
        return []
    # a reference inside a copy (QUOTED) is the statute's text: the copy covers it
    cited = [sentence_span(text, c.start, c.end) for c in checked
             if c.kind != "passage" and c.label != QUOTED]
    copied = [(c.start, c.end) for c in checked if c.kind == "passage"]
    targets = [_normalized(a.text)[0] for a in sources]
    out = []
    for m in re.finditer(f"[^{_SENTENCE_ENDS}]+", text):
        start, end = m.span()
        lead = _LEADING_MARKERS_RE.match(text, start)
        start = lead.end() if lead else start
        while end > start and text[end - 1].isspace():
            end -= 1
        enumerator = _ENUMERATOR_RE.match(text, start, end)
        words = _normalized(text[enumerator.end() if enumerator else start:end])[0]
        verdict = _VERDICT_RE.fullmatch(words) is not None
        if (not verdict and (len(_HAN_RE.findall(words)) < UNCITED_MIN_HAN
                             or any(words in t for t in targets))
                or _overlaps(start, end, cited) or text[end - 1] in "：:"):
            continue
        if _overlaps(start, end, copied):
            # the words beside the copy, a list heading before it (5. **留置的条件**：) aside
            label = _LABEL_RE.match(text, enumerator.end() if enumerator else start, end)
            own = _outside(text, label.end() if label else start, end, copied)
            if len(_HAN_RE.findall(own)) < OWN_WORDS_MIN_HAN and \
                    not _OWN_DENIAL_RE.search(own):
                continue
        out.append((start, end))
    return out


def _outside(text: str, start: int, end: int, spans: Sequence[tuple[int, int]]) -> str:
    """text[start:end] without the parts inside spans."""
    inside = {i for s, e in spans for i in range(max(s, start), min(e, end))}
    return "".join(ch for i, ch in enumerate(text[start:end], start) if i not in inside)


def _normalized(text: str) -> tuple[str, list[int]]:
    """text without punctuation and whitespace, and each kept character's position."""
    keep = [(i, ch) for i, ch in enumerate(text) if not _NOT_WORD_RE.fullmatch(ch)]
    return "".join(ch for _, ch in keep), [i for i, _ in keep]


def copied_passages(text: str, sources: Sequence[Article]) -> list[tuple[int, int, int]]:
    """(start, end, source number) of every run of text copied from a source: at least
    COPY_CHARS characters in a row, punctuation and whitespace aside, that occur in it."""
    norm, pos = _normalized(text)
    targets = [_normalized(a.text)[0] for a in sources]
    runs: list[tuple[int, int, int]] = []  # in normalized positions
    i = 0
    while i + COPY_CHARS <= len(norm):
        found = None
        for n, target in enumerate(targets, 1):
            if norm[i:i + COPY_CHARS] in target:
                j = i + COPY_CHARS
                while j < len(norm) and norm[i:j + 1] in target:
                    j += 1
                if found is None or j > found[1]:
                    found = (i, j, n)
        if found is None:
            i += 1
            continue
        if runs and runs[-1][1] == found[0] and runs[-1][2] == found[2]:
            found = (runs.pop()[0], found[1], found[2])  # two pieces of one source in a row
        runs.append(found)
        i = found[1]
    return [(pos[s], pos[e - 1] + 1, n) for s, e, n in runs]


def _occurs_in(quote: str, article_text: str) -> bool:
    """Whether quoted text occurs in the article, punctuation aside; a quote shortened with
    an ellipsis must occur piece by piece, in order."""
    target = _normalized(article_text)[0]
    at = 0
    for piece in _ELLIPSIS_RE.split(quote):
        p = _normalized(piece)[0]
        if not p:
            continue
        found = target.find(p, at)
        if found < 0:
            return False
        at = found + len(p)
    return True


# ---------------------------------------------------------------- the check


def check_answer(text: str, sources: Sequence[Article], facts: CorpusFacts,
                 support: Support | None = None) -> list[CheckedCitation]:
    """Every citation in a generated answer, labelled. sources[i] is source i+1.

    support(sentence, article) decides whether a sentence citing one of the sources (or
    closed by its [n] marker) says what that article says; False makes it ``unsupported``.
    With None (no scorer loaded), a citation of a source is ``verified`` by being among the
    sources, as it was before claim-level support existed.
    """
    return check_citations(text, facts, sources, support)


def check_text(text: str, facts: CorpusFacts) -> list[CheckedCitation]:
    """Every citation in any text (a contract, a court paper, another chatbot's answer),
    labelled against the corpus alone: in_force, repealed, invented, invalid, misquoted,
    unresolved. What ``legalrag check`` and the 核查引用 tab show."""
    return check_citations(text, facts, None)


def check_citations(text: str, facts: CorpusFacts, sources: Sequence[Article] | None = None,
                    support: Support | None = None) -> list[CheckedCitation]:
    """The one checker behind check_answer and check_text; sources None: no answer, only
    the corpus (no markers, in_force instead of not_retrieved/verified)."""
    out: list[CheckedCitation] = []
    taken: list[tuple[int, int]] = []
    copies = copied_passages(text, sources) if sources else []
    refs = find_citations(text, malformed=True)
    anchors = _law_anchors(text, refs, facts)
    for ref in refs:
        # A continuation (…和第四十条) starts at its connector; the raw text does not.
        raw, start = ref.raw, ref.end - len(ref.raw)
        deictic = _deictic(ref, facts)
        context = None
        if deictic:
            # 本法第三十九条 (often copied from an article's own text) means, in this order:
            # the law of the source it is copied from; the law named before it in its
            # sentence; the source its sentence's [n] marker names; the law named (or
            # resolved) last before it. The citation starts at 本法, not at the words the
            # title pattern swept up (除劳动者有本法).
            copy = next((n for s, e, n in copies if s <= ref.start < e), None)
            before = next(((pos, law) for pos, law in reversed(anchors) if pos < ref.start),
                          None)
            marker = _marker_in(sentence_at(text, ref.start, ref.end), sources)
            if copy is not None:
                law = sources[copy - 1].law  # type: ignore[index]  # copies imply sources
                context = (law, f"引自来源[{copy}]，指《{law}》；")
            elif marker is not None and (before is None or before[0] < _sentence_start(
                    text, ref.start)):
                law = sources[marker - 1].law  # type: ignore[index]
                context = (law, f"按本句所注来源[{marker}]，指《{law}》；")
            elif before is not None:
                context = (before[1], f"按上文指《{before[1]}》；")
            if context is not None:
                anchors.append((ref.start, context[0]))  # a later 本法 may rely on it
                anchors.sort()
            i = raw.find(deictic)
            if i > 0:
                raw, start = raw[i:], start + i
        out.append(_check_article(ref, raw, start, sources, facts, deictic, context))
        taken.append((start, ref.end))
    for m in _LOOSE_ARTICLE_RE.finditer(text):
        if not _overlaps(m.start(), m.end(), taken):
            out.append(CheckedCitation("article", m.group(0), m.start(), m.end(), INVALID,
                                       law=m.group(0)[1:m.group(0).index("》")],
                                       note="条号写法有误，无法核对"))
            taken.append((m.start(), m.end()))
    for m in _LAW_MENTION_RE.finditer(text):
        if not _overlaps(m.start(), m.end(), taken) and (
                names_instrument(m.group("law"))
                or facts.names.resolve(m.group("law"), bracketed=True) is not None):
            out.append(_check_law(m.group(0), m.start(), m.end(), m.group("law"), sources,
                                  facts))
    if sources is not None:
        out += _markers(text, sources)
    out = _check_quotes(text, out)
    if sources is None:
        out = _check_changed_words(text, out)
    if sources is not None:
        out = _check_support(text, out, sources, copies, support)
        out = _check_marker_agreement(text, out, sources)
        out = note_provisos(text, out, sources, copies)
        out = _quoted_references(out, copies, sources)
        out += _copied(text, copies, sources)
    out.sort(key=lambda c: (c.start, c.end))
    return out


def _quoted_references(checked: list[CheckedCitation], copies: Sequence[tuple[int, int, int]],
                       sources: Sequence[Article]) -> list[CheckedCitation]:
    """A citation inside words copied from a source (本法第三十九条 in a copy of 第二十一条)
    is the statute's own text, not a claim of the answer: ``quoted``, shown as a link with no
    ✓ and no mark. A browser session read ✓ on such a 本法第三十九条 as "article 39 says
    this sentence", and 未在检索来源中 on one whose article was not retrieved as a fault of
    the answer. Errors (an article the corpus lacks, a repealed law) keep their label."""
    out = []
    for c in checked:
        copy = next((n for s, e, n in copies if s <= c.start < e), None)
        if copy is not None and c.kind in ("article", "law") and \
                c.label in (VERIFIED, NOT_RETRIEVED):
            c = replace(c, label=QUOTED, proviso="",
                        note=f"照录的{sources[copy - 1].citation}原文中的引用，不是回答自己的说法；"
                             + c.note)
        out.append(c)
    return out


def _copied(text: str, copies: Sequence[tuple[int, int, int]],
            sources: Sequence[Article]) -> list[CheckedCitation]:
    """A ``passage`` entry per run of words copied from a source: verified, unless the
    sentence around it changes a word of the copy (support.copy_change: 以上 for 以下
    between two copied runs, 2个月 for 一个月, a 不 left out) or leaves out the condition the
    article puts on it (support.left_out). Each run is then word for word the article's,
    but what the sentence says is not, so the runs are ``misquoted``."""
    out = []
    for s, e, n in copies:
        a = sources[n - 1]
        label, note = VERIFIED, f"照录来源{a.citation}的原文"
        left = _sentence_start(text, s)
        right = min((i for i in (text.find(ch, e) for ch in _SENTENCE_ENDS) if i >= 0),
                    default=len(text))
        change = copy_change(text[left:right], a)
        if change is not None:
            label, note = MISQUOTED, \
                f"抄录来源{a.citation}时改了字：{_change_words(*change, text[left:right])}"
        # a condition is looked for in the whole sentence, to its 。: a list read out
        # after its lead (……以下内容：……；交通……标准；) has the lead before the ；
        elif (omitted := left_out(text[max(text.rfind(ch, 0, s) for ch in _FULL_STOPS) + 1:
                                       min((i for i in (text.find(ch, e) for ch in _FULL_STOPS)
                                            if i >= 0), default=len(text))], a)) is not None:
            label, note = MISQUOTED, f"抄录来源{a.citation}时略去了条件：原文有“{omitted}”"
        out.append(CheckedCitation("passage", text[s:e], s, e, label, a.law, a.number,
                                   a.suffix, n, note, article=a))
    return out


_FULL_STOPS = "。！？\n"


def _change_words(said: str, written: str, sentence: str = "") -> str:
    """What copy_change found, in words: 原文为“一”，此处为“二”. The comparison reads 两
    as 二 (两个月 and 二个月 are one number); the sentence's own 两 is named when it has it."""
    if said and sentence and said not in sentence and \
            (as_written := said.replace("二", "两")) in sentence:
        said = as_written
    return (f"原文为“{written}”，此处为“{said}”" if said and written
            else f"原文的“{written}”被略去" if written else f"多出了原文没有的“{said}”")


def _check_changed_words(text: str, checked: list[CheckedCitation]) -> list[CheckedCitation]:
    """Without sources (check_text): a sentence that cites one article and copies its words
    with one of them changed (support.copy_change: 两个月 for 一个月, 可以 for 应当, a 不
    left out), or without the condition the article puts on them (support.left_out: 债权人
    可以请求任何一个保证人… without 没有约定保证份额的), misquotes it, though the article
    is in force. in_force says nothing about the sentence, and here the sentence states a
    rule the article does not.

    A sentence citing two or more articles is left alone: the changed word may be the
    other article's own. A citation the article itself makes (本法第十八条, copied with
    it) is no second article."""
    out = []
    for c in checked:
        if c.kind == "article" and c.label == IN_FORCE and c.article is not None:
            # the whole sentence to its 。: a rule's clauses after ； are copied too
            left = max(text.rfind(ch, 0, c.start) for ch in _FULL_STOPS) + 1
            right = min((i for i in (text.find(ch, c.end) for ch in _FULL_STOPS) if i >= 0),
                        default=len(text))
            cited = {(o.law, o.number, o.suffix) for o in checked
                     if o.kind in ("article", "law") and left <= o.start < right
                     and (o is c or o.raw not in c.article.text)}  # its own 本法第N条
            sentence = text[left:right]
            change = copy_change(sentence, c.article) if len(cited) == 1 else None
            omitted = left_out(sentence, c.article) if len(cited) == 1 else None
            if change is not None:
                c = replace(c, label=MISQUOTED,
                            note=f"这句话抄录{c.citation}时改了字："
                                 f"{_change_words(*change, sentence)}")
            elif omitted is not None:
                c = replace(c, label=MISQUOTED,
                            note=f"这句话抄录{c.citation}时略去了条件：原文有“{omitted}”")
        out.append(c)
    return out


def changed_copies(text: str, checked: Sequence[CheckedCitation]
                   ) -> list[tuple[int, int, list[CheckedCitation]]]:
    """(start, end, passages) of every stretch of text that copies a source with a word
    changed: the ``misquoted`` passages of one source in one sentence, from the first one's
    start to the last one's end (the changed word lies between or next to them)."""
    groups: dict[tuple[int, int | None], list[CheckedCitation]] = {}
    for c in checked:
        if c.kind == "passage" and c.label == MISQUOTED:
            groups.setdefault((_sentence_start(text, c.start), c.source), []).append(c)
    return sorted((min(c.start for c in g), max(c.end for c in g), g) for g in groups.values())


def _sentence_start(text: str, pos: int) -> int:
    return max(text.rfind(ch, 0, pos) for ch in _SENTENCE_ENDS) + 1


def _marker_in(sentence: str, sources: Sequence[Article] | None) -> int | None:
    """The first source an [n] marker in the sentence names, if any."""
    for m in _MARKER_RE.finditer(sentence):
        for num in re.split(r"\s*[,，、]\s*", m.group(1)):
            if sources and 1 <= int(num) <= len(sources):
                return int(num)
    return None


def _markers(text: str, sources: Sequence[Article]) -> list[CheckedCitation]:
    out = []
    for m in _MARKER_RE.finditer(text):
        for num in re.split(r"\s*[,，、]\s*", m.group(1)):
            n = int(num)
            if 1 <= n <= len(sources):
                out.append(CheckedCitation("marker", m.group(0), m.start(), m.end(), VERIFIED,
                                           law=sources[n - 1].law, number=n, source=n,
                                           note=sources[n - 1].citation,
                                           article=sources[n - 1]))
            else:
                out.append(CheckedCitation("marker", m.group(0), m.start(), m.end(), INVALID,
                                           number=n, note=f"没有来源[{n}]"))
    return out


def _check_support(text: str, checked: list[CheckedCitation], sources: Sequence[Article],
                   copies: Sequence[tuple[int, int, int]], support: Support | None
                   ) -> list[CheckedCitation]:
    """A verified source citation or marker whose sentence its source does not support
    becomes unsupported. A citation inside words copied from a source needs no scorer: it
    is the statute's own text (本法第三十八条 quoted inside 第四十六条), not a claim."""
    if support is None:
        return checked
    out = []
    for c in checked:
        if c.label == VERIFIED and c.source is not None and c.kind == "law":
            c = _law_support(text, c, sources, copies, support)
        elif c.label == VERIFIED and c.source is not None and c.kind in ("article", "marker"):
            inside = any(s <= c.start < e for s, e, _ in copies)
            sentence = sentence_at(text, c.start, c.end)
            if not inside and not support(sentence, sources[c.source - 1]):
                # "Not verified", not "the source does not say this": on the labelled
                # pairs about a third of the sentences the scorer declines are supported
                # (docs/evaluation.md, "Claim support"), so the note claims no more.
                c = replace(c, label=UNSUPPORTED,
                            note=f"未能核实来源{sources[c.source - 1].citation}"
                                 "支持这句话，请对照原文")
        out.append(c)
    return out


def note_provisos(text: str, checked: list[CheckedCitation], sources: Sequence[Article],
                   copies: Sequence[tuple[int, int, int]]) -> list[CheckedCitation]:
    """The first ✓ citation of a sentence that copies a rule its source goes on to qualify
    carries that qualification (support.omitted_proviso), once per sentence."""
    done: set[tuple[int, int]] = set()
    out = []
    for c in sorted(checked, key=lambda c: (c.start, c.end)):
        if (c.label == VERIFIED and c.source is not None and c.kind in ("article", "law",
                                                                        "marker")
                and not any(s <= c.start < e for s, e, _ in copies)):
            span = sentence_span(text, c.start, c.end)
            # the whole sentence, past a ；: 「……承担侵权责任；但……可以减轻责任。」 has it
            ends = (text.find(ch, span[1] - 1) for ch in "。！？!?\n")
            full = min((k for k in ends if k >= 0), default=len(text))
            span = (span[0], max(span[1], full))
            # ……优先购买的权利。但是，房屋按份共有人……除外。: the exception written as a
            # sentence of its own right after is said, not left out
            after = text[span[1]:].lstrip("。.！？!? ")
            if after.startswith("但"):
                nxt = text.find("。", len(text) - len(after))
                span = (span[0], nxt if nxt >= 0 else len(text))
            proviso = (None if span in done
                       else omitted_proviso(text[span[0]:span[1]], sources[c.source - 1]))
            if proviso:
                c = replace(c, proviso=proviso)
                done.add(span)
        out.append(c)
    return out


def _law_support(text: str, c: CheckedCitation, sources: Sequence[Article],
                 copies: Sequence[tuple[int, int, int]], support: Support
                 ) -> CheckedCitation:
    """A law named without an article (根据《劳动合同法》，…) earns ✓ as an article does:
    when one of that law's sources supports the sentence. Being among the sources is not
    enough: a browser session showed ✓ on 抢劫适用《…关于办理盗窃刑事案件…的解释》."""
    if any(s <= c.start < e for s, e, _ in copies):
        return c
    sentence = sentence_at(text, c.start, c.end)
    for n, a in enumerate(sources, 1):
        if a.law == c.law and support(sentence, a):
            return replace(c, source=n, note=f"来源{a.citation}")
    return replace(c, label=UNSUPPORTED,
                   note=f"未能核实来源中的《{c.law}》条文支持这句话，请对照原文")


def _check_quotes(text: str, checked: list[CheckedCitation]) -> list[CheckedCitation]:
    """Text in “…” attributed to an article (the citation just before it in the same
    sentence, or just after it: “……”（《X》第N条）) must occur in that article."""
    out = list(checked)
    articles = [i for i, c in enumerate(out) if c.kind == "article" and c.article is not None]
    for q in _QUOTE_RE.finditer(text):
        quote = q.group(1)
        if len(_normalized(quote)[0]) < MIN_QUOTE_CHARS:
            continue
        owner = next((i for i in reversed(articles) if out[i].end <= q.start()
                      and len(text[out[i].end:q.start()]) <= 40
                      and not any(ch in _SENTENCE_ENDS for ch in text[out[i].end:q.start()])),
                     None)
        if owner is None:
            owner = next((i for i in articles if out[i].start >= q.end()
                          and re.fullmatch(r"[\s（(，,]*", text[q.end():out[i].start])), None)
        if owner is None:
            continue
        c = out[owner]
        if c.article is not None and not _occurs_in(quote, c.article.text):
            shown = quote if len(quote) <= 30 else quote[:30] + "…"
            out[owner] = replace(c, label=MISQUOTED,
                                 note=f"引号中的文字“{shown}”不见于{c.citation}")
    return out


def _check_marker_agreement(text: str, checked: list[CheckedCitation],
                            sources: Sequence[Article]) -> list[CheckedCitation]:
    """A marker right after an article citation ("《X》第N条[2]") claims that source 2 is
    that article. When it is not, the marker is invalid: a small model sometimes numbers
    its sources wrongly, and a reader would trust the wrong text."""
    articles = [c for c in checked if c.kind == "article"]
    out = []
    for c in checked:
        if c.kind == "marker" and c.label in (VERIFIED, UNSUPPORTED):
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


def _deictic(ref: CitationRef, facts: CorpusFacts) -> str:
    """The 本法-like word a citation's law ends in, when it names no law itself; else ''."""
    if ref.bracketed or facts.names.resolve_ref(ref) is not None or facts.repeal_of(ref.law):
        return ""
    return next((d for d in _DEICTIC if ref.law.endswith(d)), "")


def _law_anchors(text: str, refs: Sequence[CitationRef], facts: CorpusFacts
                 ) -> list[tuple[int, str]]:
    """(position, law key) of every citation or 《law》 mention that names a corpus law."""
    out = [(r.start, law) for r in refs if (law := facts.names.resolve_ref(r))]
    out += [(m.start(), law) for m in _LAW_MENTION_RE.finditer(text)
            if (law := facts.names.resolve(m.group("law"), bracketed=True))]
    return sorted(out)


def _check_article(ref: CitationRef, raw: str, start: int, sources: Sequence[Article] | None,
                   facts: CorpusFacts, deictic: str, context: tuple[str, str] | None
                   ) -> CheckedCitation:
    """Label one article citation; context is (law, note) for a 本法-like reference."""
    number, suffix, para, item = ref.number, ref.suffix, ref.paragraph, ref.item
    prefix = ""

    def cite(label: str, law: str, note: str, source: int | None = None,
             article: Article | None = None) -> CheckedCitation:
        return CheckedCitation("article", raw, start, ref.end, label, law, number, suffix,
                               source, prefix + note, para, item, article)

    law = facts.names.resolve_ref(ref)
    if law is None:
        repeal = facts.repeal_of(ref.law, bracketed=ref.bracketed)
        if repeal is not None and not ref.error:
            return cite(REPEALED, repeal.law, repeal.note)
        if deictic:
            if context is None:
                law_name = deictic
                if ref.error:
                    return cite(INVALID, law_name, _malformed(ref))
                return cite(UNRESOLVED, law_name, f"未写明“{deictic}”指哪部法律，无法核对")
            law, prefix = context
        else:
            name = named_law(ref)
            if ref.error:
                return cite(INVALID, name or ref.law, _malformed(ref))
            if name is None:
                return cite(UNRESOLVED, "", f"未能从“{ref.law}”中识别出法律名称，无法核对")
            return cite(INVENTED, name, f"法库中没有《{name}》")
    if ref.error:
        return cite(INVALID, law, _malformed(ref))
    label_text = article_label(number, suffix)
    part = (f"第{to_chinese(para)}款" if para else "") + (f"第{to_chinese(item)}项" if item
                                                           else "")
    for n, a in enumerate(sources or (), 1):
        if (a.law, a.number, a.suffix) == (law, number, suffix):
            if cited_part(a, para, item) is None:
                return cite(INVENTED, law, f"{a.citation}没有{part}", n, a)
            return cite(VERIFIED, law, SOURCE_NOTE, n, a)
    versions = facts.lookup(law, number, suffix)
    if not versions:
        return cite(INVENTED, law, f"《{law}》没有{label_text}")
    current = versions[0]
    if not current.in_force or law not in facts.laws_in_force:
        repeal = facts.repeal_of(law, bracketed=True)
        return cite(REPEALED, law, repeal.note if repeal else f"《{law}》{label_text}已失效",
                    article=current)
    if cited_part(current, para, item) is None:
        return cite(INVENTED, law, f"《{law}》{label_text}没有{part}", article=current)
    if sources is None:
        return cite(IN_FORCE, law, f"现行有效（{current.version or '日期不详'}版）",
                    article=current)
    return cite(NOT_RETRIEVED, law, "法库中有此条，但不在检索来源中", article=current)


def _malformed(ref: CitationRef) -> str:
    """The note for a number that cannot be read, in the reader's language (the parser's
    reason is English, for logs): 条号“十十”写法有误，无法核对."""
    m = _WRITTEN_NUMBER_RE.search(ref.raw)
    what = f"条号“{m.group(1)}”" if m else "条号"
    return f"{what}写法有误，无法核对"


# How the names of legal instruments end: those of the corpus (法, 典, 条例, 规定, 解释, 办法,
# 细则, 规则, 决定, 批复, 安排, 修正案, 解答, 规范, 通知, 令) and kinds it may lack. A title in
# 《》 that ends otherwise names a document, a form or a book (《房地产经纪机构批准书》,
# 《民法典百问百答》): the answer repeats it from the question or a source, and it is no
# citation to check. One that does is checked as a law, and 法库中没有 it when the corpus
# lacks it.
INSTRUMENT_ENDINGS = ("法", "典", "条例", "规定", "解释", "办法", "细则", "规则", "决定", "批复",
                      "安排", "修正案", "解答", "规范", "通知", "令", "意见", "纪要", "答复",
                      "决议", "公约", "协定", "条约", "章程", "规程", "守则", "准则", "指引")
_TRAILING_NOTE_RE = re.compile(r"[（(][^（）()]*[）)]$")


def names_instrument(title: str) -> bool:
    """Whether a title in 《》 is written as a legal instrument's name.

    >>> names_instrument("劳动保护法"), names_instrument("民间借贷规定（试行）")
    (True, True)
    >>> names_instrument("房地产经纪机构批准书"), names_instrument("民法典百问百答")
    (False, False)
    """
    return _TRAILING_NOTE_RE.sub("", title.strip()).endswith(INSTRUMENT_ENDINGS)


def _check_law(raw: str, start: int, end: int, written: str,
               sources: Sequence[Article] | None, facts: CorpusFacts) -> CheckedCitation:
    law = facts.names.resolve(written, bracketed=True)
    name = normalize_law_name(written)
    if law is None:
        repeal = facts.repeal_of(written, bracketed=True)
        if repeal is not None:
            return CheckedCitation("law", raw, start, end, REPEALED, repeal.law,
                                   note=repeal.note)
        return CheckedCitation("law", raw, start, end, INVENTED, name,
                               note=f"法库中没有《{name}》")
    if law not in facts.laws_in_force:
        repeal = facts.repeal_of(law, bracketed=True)
        return CheckedCitation("law", raw, start, end, REPEALED, law,
                               note=repeal.note if repeal else f"《{law}》已失效")
    if sources is None:
        return CheckedCitation("law", raw, start, end, IN_FORCE, law, note="现行有效")
    for n, a in enumerate(sources, 1):
        if a.law == law:
            return CheckedCitation("law", raw, start, end, VERIFIED, law, source=n,
                                   note=f"来源{a.citation}")
    return CheckedCitation("law", raw, start, end, NOT_RETRIEVED, law,
                           note="法库中有此法，但不在检索来源中")


def uncited_cuts(text: str, uncited: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Where the sentences that cite nothing are cut out of the answer to be shown after
    it (vocab.UNCITED_HEAD): each span with the punctuation that closes it."""
    out = []
    for s, e in uncited:
        while e < len(text) and text[e] in "。！？!?；;":
            e += 1
        out.append((s, e))
    return out


def tidy_cut(text: str) -> str:
    """text after sentences were cut out of it: lines left empty go, and a run of blank
    lines becomes one."""
    lines = [ln.rstrip() for ln in text.split("\n")]
    out: list[str] = []
    for ln in lines:
        if ln.strip() in ("", "。"):
            if out and out[-1] != "":
                out.append("")  # one blank line where a paragraph was
            continue
        out.append(ln)
    return "\n".join(out).strip()


def annotate(text: str, checked: Sequence[CheckedCitation],
             uncited: Sequence[tuple[int, int]] = (), fold: bool = False) -> str:
    """text with a visible mark after every citation that is not verified or whose
    article adds an exception the sentence leaves out, and at the end of every sentence
    that cites nothing (uncited_sentences); with fold, such sentences are cut out instead
    (uncited_cuts), for the answer to list them after itself."""
    marks: dict[int, str] = {}
    for _, end, _group in changed_copies(text, checked):
        marks[end] = MARKS[MISQUOTED]
    for c in sorted(checked, key=lambda c: c.end):
        if c.label not in (VERIFIED, QUOTED) and c.kind != "passage":
            marks.setdefault(c.end, MARKS[c.label])  # one mark per span ([1,9] yields two)
        elif c.proviso:
            marks.setdefault(c.end, PROVISO_MARK.format(proviso=c.proviso))
    if fold:
        cuts = uncited_cuts(text, uncited)
        out = []
        for i in range(len(text) + 1):
            if i in marks and not any(s < i <= e for s, e in cuts):
                out.append(marks[i])
            if i < len(text) and not any(s <= i < e for s, e in cuts):
                out.append(text[i])
            if any(e == i + 1 for _, e in cuts) and out and out[-1] in "；;，," and \
                    (i + 1 == len(text) or text[i + 1] == "\n"):
                out[-1] = "。"  # ……交付之日；[cut] at a line's end: the sentence ends here
        return tidy_cut("".join(out))
    for _, end in uncited:
        marks[end] = marks.get(end, "") + UNCITED_MARK
    out = []
    pos = 0
    for at in sorted(marks):
        out += [text[pos:at], marks[at]]
        pos = at
    out.append(text[pos:])
    return "".join(out)


def repeal_notes(checked: Sequence[CheckedCitation]) -> list[str]:
    """One sentence per repealed law or article the answer names, without repeats."""
    seen: dict[str, None] = {}
    for c in checked:
        if c.label == REPEALED and c.note:
            seen.setdefault(c.note + "。", None)
    return list(seen)


# What the question itself cites that the corpus cannot back, said before the answer: the
# sources and the answer that follow are what the search found, not the article named.
PREMISE_NOTES = {
    INVENTED: "请注意：法库中查不到问题里的{raw}，{note}。下面列出的是检索到的其他条文，"
              "不是该条，请核对法律名称和条文号。",
    REPEALED: "请注意：问题里的{raw}已失效，{note}。下面的回答请以现行条文为准。",
    INVALID: "请注意：问题里的{raw}条号写法有误，无法核对，请核对条文号。",
}
# a law named without an article that the corpus does not hold
PREMISE_LAW_NOTE = ("请注意：法库中没有问题里的{raw}（名称有误，或法库未收录），"
                    "下面列出的条文都不出自该文件。")


def premise_notes(question: str, facts: CorpusFacts) -> tuple[str, ...]:
    """One note per citation in the question that names no article or law in the corpus,
    a repealed one, or a malformed number (check_text's labels), without repeats."""
    seen: dict[str, None] = {}
    for c in check_text(question, facts):
        if c.label in PREMISE_NOTES:
            note = (PREMISE_LAW_NOTE if c.kind == "law" and c.label == INVENTED
                    else PREMISE_NOTES[c.label])
            seen.setdefault(note.format(raw=c.raw.strip(), note=c.note or c.label), None)
    return tuple(seen)


# How people ask for what an article says or how two differ, and the particles around it:
# a question that is citations and these words only asks for the articles it names.
_ASKING_RE = re.compile(
    "|".join(sorted((
        "是怎么规定的", "是如何规定的", "怎么规定的", "如何规定的", "怎么规定", "如何规定",
        "规定了什么", "规定了哪些", "规定的是什么", "有什么规定", "有哪些规定", "的规定",
        "规定", "的内容是什么", "内容是什么", "的内容", "内容", "说了什么", "讲了什么",
        "写了什么", "说的是什么", "讲的是什么", "原文", "全文", "条文", "是什么", "什么意思",
        "是什么意思", "啥意思", "的意思", "有什么区别", "有何区别", "区别是什么", "的区别",
        "区别", "有什么不同", "有何不同",
        "怎么理解", "如何理解", "请解释一下", "请解释", "解释一下", "解读", "请问", "查一下",
        "帮我查", "看看", "是", "的", "了", "吗", "呢", "啊", "吧", "呀", "和", "与", "及",
        "以及", "还有", "中", "里"), key=len, reverse=True)))
_NOT_WORDS_RE = re.compile(r"[\W_]+")


def cites_only(question: str, names: LawNames | None = None) -> bool:
    """Whether the question asks for the articles or laws it cites and nothing more
    (《民法典》第二千零一条是怎么规定的？): without them there is nothing to search for.

    A bare title is read from running text with the words before it (醉驾适用刑法第一百
    三十三条之一吗？ is parsed as the law 醉驾适用刑法). Given the corpus's law names, only
    the ending that names a law counts as the citation, so 醉驾适用 is asked, not cited.
    """
    spans = [(_title_start(question, c, names), c.end)
             for c in find_citations(question, malformed=True)]
    spans += [m.span() for m in _LAW_MENTION_RE.finditer(question)]
    if not spans:
        return False
    rest = list(question)
    for s, e in spans:
        rest[s:e] = [" "] * (e - s)
    return not _NOT_WORDS_RE.sub("", _ASKING_RE.sub("", "".join(rest)))


def _title_start(question: str, ref: CitationRef, names: LawNames | None) -> int:
    """Where a citation's law title begins in the question: for a bare title, the longest
    ending of the words before 第 that names a corpus law (or the whole, if none does)."""
    end = question.find("第", ref.start, ref.end)
    if ref.bracketed or names is None or end < 0:
        return ref.start
    return next((i for i in range(ref.start, end - 1) if names.exact(question[i:end])),
                ref.start)
