"""Passages: the paragraphs (款) and items (项) of the retrieved articles that answer a
question, chosen before the model speaks.

A 1.5B model on two cores reads about 150 prompt tokens a second, so five whole articles
cost it six seconds before its first word, and it loses the rule in them. The retrieval
already knows which articles matter; a paragraph-level score says which of their
paragraphs do:

- the **provision**: the best source's best paragraph, quoted verbatim with its citation
  (《劳动合同法》第三十八条第一款第（二）项) and shown before the model runs, and beside it
  another source's best paragraph when that scores nearly as well;
- the **prompt**: the best paragraphs of the top sources within a token budget, plus the
  article a chosen paragraph points to (依照本法第三十八条规定…) when it is not there yet.

    >>> scorer = PassageScorer(embed=embedder.encode)                      # doctest: +SKIP
    >>> best = scorer.rank("公司拖欠工资，我能辞职吗？", [a38, a46])[0]     # doctest: +SKIP
    >>> best.citation, best.quote                                          # doctest: +SKIP
    ('《劳动合同法》第三十八条第一款第（二）项',
     '用人单位有下列情形之一的……（二）未及时足额支付劳动报酬的；')

The score is the cosine of question and passage under the embedding model that built the
index, plus the share of the question's character bigrams the passage contains: the
cosine finds the paragraph about the same matter, the bigrams the one in its words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from legalrag.answer.check import paragraphs
from legalrag.citations import LawNames, cross_references, find_citations, reference_key
from legalrag.numerals import parse_numeral, to_chinese
from legalrag.records import Article
from legalrag.vocab import bigrams

Embed = Callable[[list[str]], np.ndarray]  # texts -> L2-normalised rows
GAP = "……"
# The three constants below, with assistant.PROVISION_FROM (how many of the best sources
# may give a quote), were chosen on the STARD tune part out of fold (bench/tune_provision.py
# --encoders: each tune question retrieved by an encoder that never saw it, no chat model)
# by the share of questions with a gold article quoted, less 0.1 per quoted article. With
# the cross-encoder stage (2026-12-05): gold quoted 48.7% -> 52.9% of tune questions
# (dev 51.5% -> 54.0%) against the earlier 0.5 / 0.93 / best 3 / 0.9, at 1.82 quoted
# articles instead of 1.55 (bench/results/provision_tuned.json).
#
# The weight of the question's bigrams found in a passage, next to the cosine (0–1 both).
BIGRAM_WEIGHT = 0.75
# A lower-ranked source's passages give way to the best source's: rank r's score is
# multiplied by RANK_DECAY ** (r - 1), so a slightly better paragraph of source 5 does not
# push out the rule of source 1.
RANK_DECAY = 0.96
# A second paragraph, from another of the best sources, is quoted when its score reaches
# this share of the first's (it is shown as 另见, a related provision). The five sources
# often hold two articles that answer the question together (the rule and the amount,
# 第四十六条 and 第四十七条). At 0.85 a second article is quoted in about four answers of
# five; 0.9 quotes one in half of them (tune 51.1%), 0.8 almost always (53.1%).
SECOND_PROVISION = 0.85
_ITEM_NO_RE = re.compile(r"^\s*[（(]([一二三四五六七八九十]+)[）)]")
# A paragraph whose list is of exceptions (…七日内退货，且无需说明理由，但下列商品除外：):
# the paragraph states the rule itself, and any one item of it is an exception.
_EXCEPTIONS_RE = re.compile(r"(?:但|。)[^但。]*(?:下列|以下)[^但。]*除外[：:]\s*$")
# A paragraph that says what it adds to the one before it (除前款所列商品外…,
# 违反前款规定的…): read alone, 前款 points at words the reader was not shown.
_PREVIOUS = "前款"
# A question that asks for a named article and nothing else (…第三十九条是怎么规定的？) is
# shown the article from its start, whole lines up to this many characters: any one of its
# paragraphs or items, chosen by the words 是怎么规定的, would be arbitrary.
WHOLE_CHARS = 600


@dataclass(frozen=True, slots=True)
class Passage:
    """One paragraph (款) of an article, or one item (项) of a paragraph that lists them.

    An item is quoted with the sentence that introduces it (用人单位有下列情形之一的，…),
    which is verbatim text of the same paragraph: the item alone reads as a fragment. A
    paragraph that refers to 前款 is quoted after the paragraph before it (`before`), which
    is what 前款 means; the score reads neither addition's words but the lead's.
    """

    article: Article
    paragraph: int  # 1-based 款
    item: int | None  # 1-based 项, None for the paragraph itself
    lead: str  # an item's introducing paragraph line; "" for a paragraph
    text: str  # the paragraph line (without its items) or the item line
    score: float = 0.0
    before: str = ""  # the paragraph before, when this one refers to it as 前款
    span: int = 0  # a quote of the article itself: its first `span` lines (whole_article)

    @property
    def citation(self) -> str:
        """《劳动合同法》第三十八条第一款第（二）项; a one-paragraph article is cited
        without 第一款, as statutes do; the article itself by its number."""
        out = self.article.citation
        if self.span:
            return out
        if self.before:
            out += f"第{to_chinese(self.paragraph - 1)}款、"
        if len(paragraphs(self.article)) > 1:
            out += f"第{to_chinese(self.paragraph)}款"
        if self.item is not None:
            out += f"第（{to_chinese(self.item)}）项"
        return out

    @property
    def lines(self) -> tuple[str, ...]:
        """The article lines quoted, in order: the paragraph before (前款), an item's
        lead, and the item or the paragraph; for the article itself, its first lines."""
        if self.span:
            return tuple(p.text for p in split_passages(self.article)[:self.span])
        return tuple(line for line in (self.before, self.lead, self.text) if line)

    @property
    def shown(self) -> tuple[str, ...]:
        """The lines with …… where the article has lines between them (the items between
        a lead and its third item, the list of the paragraph before), and after a
        paragraph whose list is left out (…但下列商品除外：……), or after the part of an
        article that fits WHOLE_CHARS."""
        at = {p.key: i for i, p in enumerate(split_passages(self.article))}
        if self.span:
            return self.lines + ((GAP,) if self.span < len(at) else ())
        keys = [*([(self.paragraph - 1, 0)] if self.before else []),
                *([(self.paragraph, 0)] if self.lead else []), self.key]
        out: list[str] = []
        for k, (key, line) in enumerate(zip(keys, self.lines, strict=True)):
            if k and at[key] != at[keys[k - 1]] + 1:
                out.append(GAP)
            out.append(line)
        if self.item is None and self.text.rstrip().endswith(("：", ":")):
            out.append(GAP)
        return tuple(out)

    @property
    def quote(self) -> str:
        """The verbatim words to show, on one line (`shown` joined)."""
        return "".join(self.shown)

    @property
    def key(self) -> tuple[int, int]:
        """Order within the article: the paragraph, then its items after it."""
        return (self.paragraph, 0 if self.item is None else self.item)


def split_passages(article: Article) -> list[Passage]:
    """Every paragraph and item of an article, in order (check.paragraphs splits them)."""
    out: list[Passage] = []
    previous = ""
    for p, (head, items) in enumerate(paragraphs(article), 1):
        before = previous if _PREVIOUS in head else ""
        out.append(Passage(article, p, None, "", head, before=before))
        for i, line in enumerate(items, 1):
            m = _ITEM_NO_RE.match(line)
            number = _item_number(m.group(1)) if m else i
            out.append(Passage(article, p, number, head, line, before=before))
        previous = head
    return out


def whole_article(article: Article, limit: int = WHOLE_CHARS) -> Passage:
    """The article as one quote: its lines from the start while they fit limit characters
    (the first always), …… after them when more follow."""
    lines = split_passages(article)
    span, size = 0, 0
    for p in lines:
        size += len(p.text)
        if span and size > limit:
            break
        span += 1
    first = lines[0]
    return Passage(article, first.paragraph, None, "", first.text, span=span)


def asked_passage(article: Article, question: str) -> Passage:
    """What a question that asks for a named article is shown of it: the paragraph or
    item it cites (劳动合同法第十条第二款是什么意思？), else the article (whole_article)."""
    for ref in find_citations(question):
        if (ref.number, ref.suffix) != (article.number, article.suffix) or ref.law not in (
                article.law, article.law_title) and article.law not in ref.law:
            continue
        if ref.paragraph is None and ref.item is None:
            break
        passages = split_passages(article)
        # 第三项 without 第M款: an item of the first paragraph that lists items
        paragraph = ref.paragraph or next((p.paragraph for p in passages if p.item), None)
        part = next((p for p in passages if p.paragraph == paragraph and p.item == ref.item),
                    None)
        if part is not None:
            return part
    return whole_article(article)


def _item_number(numeral: str) -> int:
    try:
        return parse_numeral(numeral)
    except ValueError:
        return 0


class PassageScorer:
    """Scores the passages of articles against a question (see the module doc)."""

    def __init__(self, embed: Embed) -> None:
        self.embed = embed

    def rank(self, question: str, articles: Sequence[Article]) -> list[Passage]:
        """Every passage of articles, best first; articles are in retrieval order, and a
        lower-ranked article's passages are discounted by RANK_DECAY per rank."""
        passages = [p for a in articles for p in split_passages(a)]
        if not passages:
            return []
        scores = self.scores(question, passages)
        rank_of = {a.id: r for r, a in enumerate(articles)}
        out = [_with_score(p, s * RANK_DECAY ** rank_of[p.article.id])
               for p, s in zip(passages, scores, strict=True)]
        return sorted(out, key=lambda p: -p.score)

    def scores(self, question: str, passages: Sequence[Passage]) -> list[float]:
        """Cosine of question and passage (an item with its lead), plus BIGRAM_WEIGHT
        times the share of the question's bigrams the passage contains."""
        texts = [p.lead + p.text for p in passages]
        vectors = self.embed([question, *texts])
        cosines = vectors[1:] @ vectors[0]
        asked = bigrams(question)
        out = []
        for text, cos in zip(texts, cosines, strict=True):
            overlap = len(asked & bigrams(text)) / len(asked) if asked else 0.0
            out.append(float(cos) + BIGRAM_WEIGHT * overlap)
        return out


def _with_score(p: Passage, score: float) -> Passage:
    return replace(p, score=score)


def provisions(ranked: Sequence[Passage], best: Sequence[Article],
               second: float = SECOND_PROVISION) -> list[Passage]:
    """The passages to quote first: the best-scoring passage of the best sources (the
    first few of the retrieval; their passages' scores already carry the rank discount,
    so a lower source wins only with a clearly better paragraph), and the best passage of
    another of them when its score reaches `second` times the first's (0: never)."""
    ids = {a.id for a in best}
    pool = [p for p in ranked if p.article.id in ids]
    if not pool:
        return []
    first = pool[0]
    other = next((p for p in pool if p.article.id != first.article.id), None)
    if second > 0 and other is not None and first.score > 0 \
            and other.score >= second * first.score:
        return [_whole(first, pool), _whole(other, pool)]
    return [_whole(first, pool)]


def _whole(p: Passage, pool: Sequence[Passage]) -> Passage:
    """A paragraph that only introduces a list (…应当订立无固定期限劳动合同：) says nothing
    quoted alone: its best item is quoted instead, with the paragraph's words before it.
    Not when the list is of exceptions (…但下列商品除外：): the paragraph is the rule,
    and an item would quote one exception as the basis."""
    if p.item is not None or not p.text.rstrip().endswith(("：", ":")) \
            or _EXCEPTIONS_RE.search(p.text):
        return p
    return next((q for q in pool if q.article.id == p.article.id
                 and q.paragraph == p.paragraph and q.item is not None), p)


def excerpt(article: Article, chosen: Sequence[Passage]) -> str:
    """The chosen passages of one article as they stand in it, in article order: an
    item comes with the line that introduces it, each line once, and …… marks what is
    left out (between, before or after the lines kept).

    The result is the article's own lines only: nothing paraphrased, nothing added.
    """
    lines = split_passages(article)
    at = {p.key: i for i, p in enumerate(lines)}
    chosen = [p for p in chosen if p.article.id == article.id]
    keep = sorted({i for p in chosen for i in range(p.span)}
                  | {at[p.key] for p in chosen}
                  | {at[(p.paragraph, 0)] for p in chosen if p.item is not None}
                  | {at[(p.paragraph - 1, 0)] for p in chosen if p.before})
    out: list[str] = []
    for prev, i in zip([-1, *keep], keep, strict=False):
        if i != prev + 1:
            out.append(GAP)
        out.append(lines[i].text)
    if keep and keep[-1] != len(lines) - 1:
        out.append(GAP)
    return "\n".join(out)


def referenced(passages: Sequence[Passage], names: LawNames,
               lookup: Callable[[str, int, int], Sequence[Article]]) -> list[Article]:
    """Articles the passages point to (依照本法第三十八条…), in force, each once, in the
    order they are mentioned; an article's reference to itself is skipped.

    lookup(law, number, suffix) gives the versions of an article (CorpusFacts.lookup).
    """
    out: list[Article] = []
    seen: set[str] = set()
    for p in passages:
        a = p.article
        for ref in cross_references(p.lead + p.text):
            key = reference_key(ref, a.law, names.resolve)
            if key is None or key == (a.law, a.number, a.suffix):
                continue
            found = [x for x in lookup(*key) if x.in_force]
            if found and found[0].id not in seen:
                seen.add(found[0].id)
                out.append(found[0])
    return out


__all__ = ["GAP", "Passage", "PassageScorer", "bigrams", "excerpt", "provisions",
           "SECOND_PROVISION", "referenced", "split_passages"]
