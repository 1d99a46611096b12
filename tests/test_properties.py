"""Property-based tests (hypothesis) over the citation parser, the numerals, the corpus parser
and the query path: for every input they may meet, they give the right answer or a clear
LegalRagError, never a traceback.

Example counts are modest (the test machine has two cores); runs are derandomized and keep
no example database, so they are reproducible and write nothing into the repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copy_corpus
from hypothesis import example, given, settings
from hypothesis import strategies as st

from legalrag.answer.assistant import validate_question
from legalrag.answer.check import CorpusFacts, annotate, check_answer
from legalrag.citations import LawNames, find_citations
from legalrag.errors import CorpusError, QueryError
from legalrag.index.corpus import parse_corpus, parse_file
from legalrag.numerals import article_label, parse_numeral, to_chinese
from legalrag.records import Article, Hit
from legalrag.vocab import LABELS, MODES

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None)
SLOWER = settings(max_examples=60, deadline=None, derandomize=True, database=None)

# Pieces citations are made of, in the wrong orders too: hypothesis glues them together.
FRAGMENTS = [
    "《", "》", "第", "条", "之", "款", "、", "和", "及", "或者", "，", "。", " ", "\n", "\u3000",
    "劳动法", "劳动合同法", "刑法", "民法典", "中华人民共和国", "本法", "条例", "解释",
    "0", "7", "47", "100000", "99999", "０", "４７",
    "零", "一", "二", "九", "十", "百", "千", "万", "十十", "二二", "两",
    "〈", "〉", "(", ")", "（", "）", "🙂", "\x00", "\x1b", "<|im_start|>",
]
citation_soup = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join)
NUMERAL_PIECES = ["0", "1", "9", "47", "100000", "０", "零", "一", "二", "十", "百", "千", "万",
                  "两"]
numeral_soup = st.lists(st.sampled_from(NUMERAL_PIECES), min_size=1, max_size=6).map("".join)
# A citation's shape with any numeral in it: 《劳动法》第0条, 刑法第十十条之二二 …
citation_shaped = st.builds(
    "{}第{}条{}".format,
    st.sampled_from(["《劳动法》", "劳动合同法", "《中华人民共和国刑法》", "民法典", "《不存在法》",
                     "本法"]),
    numeral_soup,
    st.sampled_from(["", "之一", "之十十", "第二款", "第0款", "、第三条", "和第100000条", "[1]"]),
)
any_text = st.one_of(st.text(max_size=200), citation_soup,
                     st.lists(st.one_of(citation_shaped, citation_soup), max_size=4).map("".join))


@pytest.fixture(scope="module")
def corpus_laws(tmp_path_factory) -> tuple[LawNames, dict[str, str], list[Article]]:
    """The small real corpus, parsed: law keys, their full titles, and the articles."""
    root = copy_corpus(tmp_path_factory.mktemp("laws") / "corpus")
    report = parse_corpus(root)
    titles = {a.law: a.law_title for a in report.articles}
    return LawNames(sorted(titles)), titles, report.articles


# -- numerals ---------------------------------------------------------------------------------

@pytest.mark.fast
@FAST
@given(st.integers(1, 99_999))
def test_every_article_number_round_trips_through_chinese(n):
    assert parse_numeral(to_chinese(n)) == n
    assert parse_numeral(str(n)) == n


@pytest.mark.fast
@FAST
@given(st.one_of(citation_soup, numeral_soup))
def test_a_numeral_parses_to_a_valid_article_number_or_is_rejected(text):
    try:
        n = parse_numeral(text)
    except ValueError:
        return
    assert 1 <= n < 100_000
    assert article_label(n)  # every number the parser accepts can be written back


# -- citation parser --------------------------------------------------------------------------

PREFIXES = ["", "根据", "依照", "。", "问：", "see ", "1. ", "\n"]
AFTER = ["", "。", "的规定", "规定：", "？", " and more", "\n下一段"]


@FAST
@given(data=st.data())
def test_a_written_citation_parses_back_exactly(corpus_laws, data):
    names, titles, _ = corpus_laws
    law = data.draw(st.sampled_from(sorted(titles)), "law")
    written = data.draw(st.sampled_from([law, titles[law]]), "as written")
    bracketed = data.draw(st.booleans(), "bracketed")
    n = data.draw(st.integers(1, 99_999), "number")
    digits = data.draw(st.sampled_from(["chinese", "arabic", "fullwidth"]), "digits")
    suffix = data.draw(st.integers(0, 10), "suffix")
    para = data.draw(st.one_of(st.none(), st.integers(1, 20)), "paragraph")
    number = {"chinese": to_chinese(n), "arabic": str(n),
              "fullwidth": str(n).translate(str.maketrans("0123456789", "０１２３４５６７８９"))}
    cite = (f"《{written}》" if bracketed else written) + f"第{number[digits]}条"
    cite += f"之{to_chinese(suffix)}" if suffix else ""
    cite += f"第{to_chinese(para)}款" if para else ""
    before, after = data.draw(st.sampled_from(PREFIXES)), data.draw(st.sampled_from(AFTER))
    text = before + cite + after

    (ref,) = find_citations(text)
    assert names.resolve(ref.law) == law
    assert (ref.number, ref.suffix, ref.paragraph) == (n, suffix, para)
    assert ref.bracketed == bracketed
    assert text[ref.start:ref.end] == ref.raw
    assert ref.raw.endswith(cite)  # a bare title may take the words in front of it along


@pytest.mark.fast
@FAST
@given(any_text)
@example("《劳动法》第0条、第100000条")
def test_any_text_yields_well_formed_citations_and_never_raises(text):
    refs = find_citations(text)
    last_end = 0
    for ref in refs:
        assert last_end <= ref.start < ref.end <= len(text)
        assert text[ref.start:ref.end].endswith(ref.raw)
        assert 1 <= ref.number < 100_000 and article_label(ref.number, ref.suffix)
        last_end = ref.end


@FAST
@given(any_text)
def test_law_names_resolve_to_a_corpus_law_or_none(corpus_laws, text):
    names, titles, _ = corpus_laws
    assert names.resolve(text) in (None, *titles)


@FAST
@given(any_text)
@example("依《劳动法》第0条及《刑法》第100000条[1]")
@example("《劳动法》第十十条[1]")
def test_the_answer_check_labels_any_text_and_never_raises(corpus_laws, text):
    """What a model writes is arbitrary: the check must label it, whatever it is."""
    _, _, articles = corpus_laws
    facts = _facts(articles)
    sources = articles[:3]
    checked = check_answer(text, sources, facts)
    assert all(c.label in LABELS and 0 <= c.start < c.end <= len(text) for c in checked)
    marked = annotate(text, checked)
    assert len(marked) >= len(text)


_FACTS: dict[int, CorpusFacts] = {}


def _facts(articles: list[Article]) -> CorpusFacts:
    if id(articles) not in _FACTS:
        _FACTS[id(articles)] = CorpusFacts.from_articles(articles)
    return _FACTS[id(articles)]


# -- corpus parser ----------------------------------------------------------------------------

LINE_PIECES = ["# 测试条例", "## 第一章 总则", "### 第一节", "<!-- INFO END -->", "第一条 甲。",
               "第二条 乙。", "第二条 重复。", "第二二条 错号。", "第零条 零。", "第0条 零。",
               "第100000条 太大。", "第一条之十十 错。", "第十条之一 插入。", "一、事项。",
               "二、事项。", "正文一段。", "", "   ", "\t", "第五条规定的情形。",
               "2024年1月1日施行"]
statute_like = st.lists(st.one_of(st.sampled_from(LINE_PIECES), st.text(max_size=40)),
                        max_size=25).map("\n".join)


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "fuzz.md"


@FAST
@given(statute_like)
def test_any_file_parses_or_is_refused_with_file_and_line(fuzz_file, text):
    path = fuzz_file
    path.write_text(text, encoding="utf-8")
    try:
        pf = parse_file(path, "fuzz.md", "")
    except CorpusError as e:
        assert e.path == "fuzz.md" and e.reason
        return
    keys = [(a.number, a.suffix) for a in pf.articles]
    assert pf.articles and len(keys) == len(set(keys))
    assert all(a.label == article_label(a.number, a.suffix) for a in pf.articles)


# -- the query path ---------------------------------------------------------------------------

@SLOWER
@given(any_text, st.sampled_from(MODES), st.integers(1, 20))
@example("劳动法第一条之十十", "bm25", 5)  # regressions: these once raised ValueError
@example("《劳动法》第0条和第100000条", "hybrid", 5)
def test_search_returns_hits_or_a_query_error(small_index, text, mode, k):
    try:
        hits = small_index.search(text, k=k, mode=mode)
    except QueryError as e:
        assert "empty" in str(e)
        assert not "".join(ch for ch in text if ch.isprintable()).strip()
        return
    assert isinstance(hits, list) and len(hits) <= k
    assert all(isinstance(h, Hit) for h in hits)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


@pytest.mark.fast
@FAST
@given(any_text)
def test_questions_are_accepted_or_refused_with_a_reason(text):
    try:
        q = validate_question(text, 1000)
    except QueryError as e:
        assert any(w in e.message for w in ("empty", "characters long", "control characters",
                                            "no Chinese characters"))
        return
    assert q == q.strip() and 0 < len(q) <= 1000

