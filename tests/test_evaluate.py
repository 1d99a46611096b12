"""Retrieval evaluation: metrics by hand, a cross-check against ir_measures, input
validation, and end-to-end runs over a small real index."""

from __future__ import annotations

import csv
import json
import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from legalrag.citations import LawNames, find_citations
from legalrag.index.corpus import parse_corpus, parse_file
from legalrag.numerals import article_label
from legalrag.records import Article, Hit
from legalrag.retrieval.evaluate import (
    NOT_FOUND,
    Bound,
    EvalError,
    EvalInputError,
    EvalQuery,
    EvalReport,
    Gold,
    check_bound_metrics,
    check_ks,
    check_modes,
    gold_ranks,
    hit_at,
    load_queries,
    mean_metrics,
    metric_names,
    missed_bounds,
    ndcg_at,
    parse_bound,
    query_metrics,
    recall_at,
    reciprocal_rank,
    render_markdown,
    run_eval,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "eval"
L2 = math.log2


# -- metrics by hand ------------------------------------------------------------------------

@pytest.mark.fast
def test_metrics_of_three_golds_found_at_3_missing_and_1():
    ranks = [3, None, 1]
    assert hit_at(ranks, 1) == 1.0
    assert recall_at(ranks, 1) == 1 / 3
    assert recall_at(ranks, 2) == 1 / 3
    assert recall_at(ranks, 3) == 2 / 3
    assert recall_at(ranks, 100) == 2 / 3
    assert reciprocal_rank(ranks) == 1.0
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; ideal with 3 golds = 1 + 1/log2(3) + 1/log2(4)
    assert ndcg_at(ranks) == pytest.approx(1.5 / (1 + 1 / L2(3) + 0.5), abs=1e-12)
    assert ndcg_at(ranks) == pytest.approx(0.703918, abs=1e-6)


@pytest.mark.fast
def test_metrics_of_a_single_gold_at_rank_2():
    m = query_metrics([2], [1, 3])
    assert m == {"hit@1": 0.0, "hit@3": 1.0, "recall@1": 0.0, "recall@3": 1.0,
                 "mrr@10": 0.5, "ndcg@10": pytest.approx(1 / L2(3), abs=1e-12)}


@pytest.mark.fast
def test_cut_off_10_is_inclusive_and_11_is_out():
    assert reciprocal_rank([10]) == 0.1
    assert reciprocal_rank([11]) == 0.0
    assert ndcg_at([10]) == pytest.approx(1 / L2(11), abs=1e-12)
    assert ndcg_at([11]) == 0.0
    assert hit_at([11], 10) == 0.0 and hit_at([11], 20) == 1.0


@pytest.mark.fast
def test_nothing_found_scores_zero_everywhere():
    m = query_metrics([None, None], [1, 5, 100])
    assert set(m.values()) == {0.0}


@pytest.mark.fast
def test_ndcg_ideal_is_capped_at_k():
    # 12 golds at ranks 1..12: the top 10 are all golds, which is the best possible list.
    assert ndcg_at(list(range(1, 13))) == pytest.approx(1.0, abs=1e-12)
    # 2 golds at 2 and 1: order among golds does not matter.
    assert ndcg_at([2, 1]) == pytest.approx(1.0, abs=1e-12)
    # a gold at 1 and one never found: 1 / (1 + 1/log2(3))
    assert ndcg_at([1, None]) == pytest.approx(1 / (1 + 1 / L2(3)), abs=1e-12)


@pytest.mark.fast
def test_mrr_uses_the_best_ranked_gold():
    assert reciprocal_rank([7, 4, None]) == 0.25


@pytest.mark.fast
@pytest.mark.parametrize("bad", [[], [0], [2, 2], [-1, None]])
def test_metric_rejects_impossible_rank_lists(bad):
    with pytest.raises(ValueError):
        recall_at(bad, 10)


@pytest.mark.fast
def test_mean_metrics_is_a_macro_average():
    per_query = [query_metrics([1], [1]), query_metrics([None, 2], [1]),
                 query_metrics([None], [1])]
    agg = mean_metrics(per_query)
    assert agg["hit@1"] == 1 / 3
    assert agg["recall@1"] == 1 / 3
    assert agg["mrr@10"] == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-12)
    assert mean_metrics([]) == {}


@pytest.mark.fast
def test_metric_names_in_display_order():
    assert metric_names([10, 1, 10]) == ["hit@1", "hit@10", "recall@1", "recall@10",
                                         "mrr@10", "ndcg@10"]


# -- matching hits to golds -----------------------------------------------------------------

@pytest.fixture(scope="module")
def labour_law() -> list[Article]:
    """The real 劳动法 articles."""
    path = ROOT / "corpus" / "社会法" / "劳动法(2018-12-29).md"
    return list(parse_file(path, "社会法/劳动法(2018-12-29).md", "社会法").articles)


def _hits(articles: list[Article]) -> list[Hit]:
    return [Hit(a, 1.0 / i, i) for i, a in enumerate(articles, 1)]


@pytest.mark.fast
def test_gold_ranks_match_law_and_number_in_any_version(labour_law):
    by_no = {a.number: a for a in labour_law}
    old_44 = replace(by_no[44], version="1994-07-05", in_force=False)
    hits = _hits([by_no[36], old_44, by_no[44], by_no[3]])
    golds = [Gold("劳动法第四十四条", "劳动法", 44), Gold("x", "劳动法", 3),
             Gold("y", "劳动法", 100), Gold("z", "劳动合同法", 36),
             Gold("《劳动法》第三十六条", "劳动法", 36, problem="pretend it did not resolve")]
    # 44 counts at its first version (rank 2); 100 and 劳动合同法 36 are absent; an
    # unresolved gold is never found even when its article is at rank 1.
    assert gold_ranks(hits, golds) == (2, 4, None, None, None)


@pytest.mark.fast
def test_gold_ranks_tell_inserted_articles_apart():
    crim = parse_file(ROOT / "corpus" / "刑法" / "刑法.md", "刑法/刑法.md", "刑法").articles
    a133 = next(a for a in crim if (a.number, a.suffix) == (133, 0))
    a133_1 = next(a for a in crim if (a.number, a.suffix) == (133, 1))
    golds = [Gold("g", "刑法", 133, 1), Gold("h", "刑法", 133, 0)]
    assert gold_ranks(_hits([a133, a133_1]), golds) == (2, 1)


# -- a small real implementation of the retriever interface ---------------------------------

@dataclass
class PresetBackend:
    """Returns fixed result lists: the search interface without an index behind it."""

    articles: list[Article]
    runs: dict[str, list[Article]]  # query text -> ranked articles
    parts: set[str] = field(default_factory=lambda: {"bm25", "dense"})
    calls: list[tuple[str, int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = LawNames(sorted({a.law for a in self.articles}))

    def search(self, query: str, k: int = 10, mode: str = "hybrid",
               include_old: bool = False) -> list[Hit]:
        self.calls.append((query, k, mode))
        return _hits(self.runs.get(query, [])[:k])

    def lookup(self, law: str, number: int, suffix: int = 0) -> list[Article]:
        return [a for a in self.articles if (a.law, a.number, a.suffix) == (law, number, suffix)]


def _article(law: str, number: int) -> Article:
    return Article(law_title=f"{law}", law=law, level="法律", category="", path=(),
                   number=number, suffix=0, label=article_label(number), text=f"{law}{number}",
                   version="2020-01-01", in_force=True, source=f"{law}.md", line=number)


def _generated(seed: int, n_queries: int = 60):
    """A random but seeded run: 3 laws x 80 articles, rankings of depth 0-30, 1-4 golds
    per query, most of them ranked somewhere, and a few golds that do not resolve."""
    rng = random.Random(seed)
    laws = ["样本甲法", "样本乙条例", "样本丙规定"]
    pool = [_article(law, n) for law in laws for n in range(1, 81)]
    runs: dict[str, list[Article]] = {}
    queries: list[EvalQuery] = []
    qrels: list[tuple[str, str]] = []
    for q in range(n_queries):
        text = f"问题{q}"
        ranking = rng.sample(pool, rng.choice([0, 5, 30, 30, 30]))
        runs[text] = ranking
        golds: list[Article] = []
        while len(golds) < rng.randint(1, 4):  # most golds retrieved, at random ranks
            g = rng.choice(ranking if ranking and rng.random() < 0.7 else pool)
            if g not in golds:
                golds.append(g)
        cites = [f"《{g.law_title}》{g.label}" for g in golds]
        for g in golds:
            qrels.append((f"q{q}", f"{g.law}|{g.number}"))
        if rng.random() < 0.1:  # an unknown law: listed, counted as a miss
            cites.append(f"《不存在的法》第{rng.randint(1, 9)}条")
            qrels.append((f"q{q}", f"unknown|{q}"))
        queries.append(EvalQuery(f"q{q}", text, tuple(cites)))
    return PresetBackend(pool, runs), queries, qrels


@pytest.mark.fast
def test_aggregates_agree_with_ir_measures_on_a_generated_run():
    import ir_measures
    from ir_measures import RR, R, ScoredDoc, Success, nDCG

    backend, queries, qrels = _generated(seed=7)
    ks = (1, 3, 5, 10, 20)
    report = run_eval(backend, queries, modes=("hybrid",), ks=ks)

    run = [ScoredDoc(q.id, f"{a.law}|{a.number}", 100.0 - i)
           for q in queries for i, a in enumerate(backend.runs[q.query][:20])]
    measures = ([Success @ k for k in ks] + [R @ k for k in ks] + [RR @ 10, nDCG @ 10])
    ref = ir_measures.calc_aggregate(
        measures, [ir_measures.Qrel(q, d, 1) for q, d in qrels], run)
    # Some queries retrieve nothing; ir_measures, like us, counts them with zeros.
    assert any(not backend.runs[q.query] for q in queries)
    ours = report.aggregate["hybrid"]
    for k in ks:
        assert ours[f"hit@{k}"] == pytest.approx(ref[Success @ k], abs=1e-12), k
        assert ours[f"recall@{k}"] == pytest.approx(ref[R @ k], abs=1e-12), k
    assert ours["mrr@10"] == pytest.approx(ref[RR @ 10], abs=1e-12)
    assert ours["ndcg@10"] == pytest.approx(ref[nDCG @ 10], abs=1e-12)
    assert ours["recall@20"] > 0.1 and ours["ndcg@10"] > 0.05  # not a run of zeros
    assert len(report.unresolved) == sum(1 for _, d in qrels if d.startswith("unknown"))


@pytest.mark.fast
def test_run_eval_searches_once_per_query_and_mode_at_full_depth():
    backend, queries, _ = _generated(seed=1, n_queries=5)
    ticks: list[int] = []
    report = run_eval(backend, queries, modes=("bm25", "dense"), ks=(1, 20, 50),
                      progress=ticks.append)
    assert [(c[1], c[2]) for c in backend.calls] == [(50, "bm25")] * 5 + [(50, "dense")] * 5
    assert ticks == [1] * 10
    assert report.depth == 50 and report.modes == ("bm25", "dense")


@pytest.mark.fast
def test_depth_is_at_least_10_for_mrr_and_ndcg():
    backend, queries, _ = _generated(seed=1, n_queries=1)
    assert run_eval(backend, queries, modes=("bm25",), ks=(1, 3)).depth == 10
    assert backend.calls[0][1] == 10


@pytest.mark.fast
def test_run_eval_refuses_dense_modes_without_a_dense_index():
    backend, queries, _ = _generated(seed=1, n_queries=1)
    backend.parts = {"bm25"}
    with pytest.raises(EvalError, match="no dense part"):
        run_eval(backend, queries, modes=("bm25", "hybrid"))
    run_eval(backend, queries, modes=("bm25",))  # BM25 alone is fine


@pytest.mark.fast
def test_unresolvable_golds_are_reported_and_count_as_misses():
    a = _article("样本甲法", 5)
    backend = PresetBackend([a], {"问": [a]})
    queries = [EvalQuery("q", "问", ("《样本甲法》第五条", "《样本乙法》第五条",
                                     "《样本甲法》第九十九条", "样本甲法五条"))]
    report = run_eval(backend, queries, modes=("bm25",), ks=(1,))
    problems = {g.citation: g.problem for _, g in report.unresolved}
    assert problems == {
        "《样本乙法》第五条": "unknown law '样本乙法'",
        "《样本甲法》第九十九条": "《样本甲法》第九十九条 is in no version of the law",
        "样本甲法五条": "no citation the parser can read; write one 《law》第N条 per entry",
    }
    assert report.results[0].ranks["bm25"] == (1, None, None, None)
    assert report.aggregate["bm25"]["recall@1"] == 0.25
    assert report.aggregate["bm25"]["hit@1"] == 1.0


@pytest.mark.fast
def test_a_gold_listed_twice_is_an_input_error():
    a = _article("样本甲法", 5)
    backend = PresetBackend([a], {})
    q = EvalQuery("q", "问", ("《样本甲法》第五条", "样本甲法第5条"), "x.jsonl", 3)
    with pytest.raises(EvalInputError, match=r"x.jsonl:3: query 'q' lists 《样本甲法》第五条"):
        run_eval(backend, [q], modes=("bm25",))


# -- reports --------------------------------------------------------------------------------

def _report() -> EvalReport:
    a = _article("样本甲法", 5)
    backend = PresetBackend([a], {"问一": [a], "问二": []})
    queries = [EvalQuery("q1", "问一", ("《样本甲法》第五条",)),
               EvalQuery("q2", "问二", ("《样本甲法》第五条", "《无此法》第一条"))]
    return run_eval(backend, queries, modes=("bm25", "hybrid"), ks=(1, 10))


@pytest.mark.fast
def test_markdown_table_has_one_row_per_mode_and_lists_unresolved():
    md = render_markdown(_report())
    lines = md.splitlines()
    assert lines[0].startswith("2 queries, 3 gold articles (1 unresolved)")
    assert lines[2] == ("| mode | Hit@1 | Hit@10 | Recall@1 | Recall@10 | MRR@10 | nDCG@10 "
                        "| ms/query |")
    assert lines[4].startswith("| bm25 | 0.500 | 0.500 | 0.500 | 0.500 | 0.500 | 0.500 |")
    assert lines[5].startswith("| hybrid | 0.500 |")
    assert "- q2: 《无此法》第一条 — unknown law '无此法'" in lines


@pytest.mark.fast
def test_write_report_outputs_json_and_per_query_csv(tmp_path):
    report = _report()
    paths = write_report(report, tmp_path / "out")
    assert [p.name for p in paths] == ["eval.json", "eval.md", "per_query.csv"]
    data = json.loads((tmp_path / "out" / "eval.json").read_text(encoding="utf-8"))
    assert data["aggregate"]["bm25"]["hit@1"] == 0.5
    assert data["unresolved"] == [{"id": "q2", "citation": "《无此法》第一条",
                                   "problem": "unknown law '无此法'"}]
    assert data["per_query"][1]["ranks"] == {"bm25": [NOT_FOUND, NOT_FOUND],
                                             "hybrid": [NOT_FOUND, NOT_FOUND]}
    with (tmp_path / "out" / "per_query.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["id"], r["article"], r["status"], r["rank_bm25"]) for r in rows] == [
        ("q1", "《样本甲法》第五条", "ok", "1"),
        ("q2", "《样本甲法》第五条", "ok", NOT_FOUND),
        ("q2", "", "unknown law '无此法'", NOT_FOUND),
    ]


# -- bounds ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, bound", [
    ("hybrid:recall@10=0.6", Bound("hybrid", "recall@10", 0.6)),
    (" bm25 : MRR@10 >= 0.45 ", Bound("bm25", "mrr@10", 0.45)),
    ("dense:nDCG@10=1", Bound("dense", "ndcg@10", 1.0)),
    ("hybrid:Hit@1=1.0", Bound("hybrid", "hit@1", 1.0)),
])
@pytest.mark.fast
def test_parse_bound(text, bound):
    assert parse_bound(text) == bound


@pytest.mark.parametrize("text, message", [
    ("recall@10=0.6", "cannot read bound"),
    ("hybrid:recall@10", "cannot read bound"),
    ("sparse:recall@10=0.6", "unknown mode 'sparse'"),
    ("hybrid:precision@10=0.6", "unknown metric 'precision'"),
    ("hybrid:recall@10=1.5", "outside 0..1"),
    ("hybrid:recall@10=0.6.1", "is not a number"),
])
@pytest.mark.fast
def test_parse_bound_rejects(text, message):
    with pytest.raises(EvalError, match=message):
        parse_bound(text)


@pytest.mark.fast
def test_bounds_must_be_measured_by_the_run():
    check_bound_metrics([parse_bound("hybrid:recall@10=0.6")], ("hybrid",), (1, 10))
    with pytest.raises(EvalError, match="recall@20, which is not measured"):
        check_bound_metrics([parse_bound("hybrid:recall@20=0.6")], ("hybrid",), (1, 10))
    with pytest.raises(EvalError, match="not in --modes"):
        check_bound_metrics([parse_bound("dense:recall@10=0.6")], ("hybrid",), (10,))


@pytest.mark.fast
def test_missed_bounds():
    report = _report()  # bm25 recall@1 = 0.5
    assert missed_bounds(report, [parse_bound("bm25:recall@1=0.5")]) == []
    assert missed_bounds(report, [parse_bound("bm25:recall@1=0.51"),
                                  parse_bound("hybrid:hit@10=0.4")]) == [
        "bm25 recall@1 = 0.5000 is below 0.51"]


@pytest.mark.fast
def test_modes_and_ks_are_checked():
    assert check_modes(["hybrid", " bm25", "hybrid"]) == ("hybrid", "bm25")
    assert check_ks([10, 1, 10]) == (1, 10)
    with pytest.raises(EvalError, match="unknown mode"):
        check_modes(["bm25", "colbert"])
    with pytest.raises(EvalError):
        check_ks([0, 10])
    with pytest.raises(EvalError):
        check_ks([])


# -- query files ----------------------------------------------------------------------------

def _write(tmp_path: Path, text: str | bytes) -> Path:
    p = tmp_path / "q.jsonl"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.fast
def test_load_queries_reads_objects_and_skips_blank_lines(tmp_path):
    p = _write(tmp_path, '{"id": "a", "query": " 问 ", "relevant": ["《劳动法》第三条"]}\n\n'
                         '{"id": 7, "query": "问2", "relevant": ["刑法第1条", "刑法第2条"]}\n')
    qs = load_queries(p)
    assert qs == [EvalQuery("a", "问", ("《劳动法》第三条",), str(p), 1),
                  EvalQuery("7", "问2", ("刑法第1条", "刑法第2条"), str(p), 3)]


@pytest.mark.parametrize("text, reason", [
    ('{"id": "a", "query": "q", "relevant": ["x"]}\n{"id": "b", "query": "q"',
     r":2: not valid JSON"),
    ('["a", "q", ["x"]]', r":1: expected a JSON object, got list"),
    ('{"id": "a", "relevant": ["x"]}', r":1: missing field\(s\): query"),
    ('{"id": "", "query": "q", "relevant": ["x"]}', r":1: \"id\" must be"),
    ('{"id": "a", "query": "  ", "relevant": ["x"]}', r":1: \"query\" must be"),
    ('{"id": "a", "query": "q", "relevant": []}', r":1: \"relevant\" must be"),
    ('{"id": "a", "query": "q", "relevant": "《劳动法》第三条"}', r":1: \"relevant\" must be"),
    ('{"id": "a", "query": "q", "relevant": ["x", 3]}', r":1: \"relevant\" must be"),
    ('{"id": "a", "query": "q", "relevant": ["x"]}\n\n{"id": "a", "query": "r", "relevant": ["y"]}',
     r":3: id 'a' already used on line 1"),
    ("\n\n", r"q.jsonl: no queries in the file"),
])
@pytest.mark.fast
def test_load_queries_names_file_line_and_reason(tmp_path, text, reason):
    with pytest.raises(EvalInputError, match=reason) as e:
        load_queries(_write(tmp_path, text))
    assert e.value.path.endswith("q.jsonl")


@pytest.mark.fast
def test_load_queries_rejects_non_utf8_and_missing_files(tmp_path):
    with pytest.raises(EvalInputError, match="not UTF-8"):
        load_queries(_write(tmp_path, "{\"id\": \"甲\"}".encode("gbk")))
    with pytest.raises(EvalInputError, match="no such file"):
        load_queries(tmp_path / "nope.jsonl")


# -- the shipped query sets -----------------------------------------------------------------

@pytest.mark.fast
def test_stard_train_ships_complete():
    qs = load_queries(DATA / "stard_train.jsonl")
    assert len(qs) == 1235
    assert sum(len(q.relevant) for q in qs) == 2205
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    for must in ("Su et al., 2024", "arXiv 2406.15313", "Copyright (c) 2024 THUIR",
                 "Permission is hereby granted, free of charge"):
        assert must in readme


@pytest.fixture(scope="module")
def full_corpus() -> list[Article]:
    return parse_corpus(ROOT / "corpus").articles


def test_citation_queries_name_exactly_their_gold_and_it_exists(full_corpus):
    names = LawNames(sorted({a.law for a in full_corpus}))
    titles = {(a.law, a.number, a.suffix): f"《{a.law_title}》{a.label}" for a in full_corpus}
    qs = load_queries(DATA / "citation_queries.jsonl")
    assert len(qs) >= 40
    for q in qs:
        gold = []
        for c in q.relevant:
            (ref,) = find_citations(c)
            key = (names.resolve(ref.law), ref.number, ref.suffix)
            assert titles.get(key) == c, f"{q.id}: {c} is not in the corpus as written"
            gold.append(key)
        asked = [(names.resolve(r.law), r.number, r.suffix) for r in find_citations(q.query)]
        assert asked == gold, q.id


# -- end to end over a small real index -----------------------------------------------------

SMALL_QUERIES = [
    {"id": "s1", "query": "如何认定劳动者严重失职？",
     "relevant": ["《中华人民共和国劳动合同法》第三十九条"]},
    {"id": "s2", "query": "未成年人参与赌博是不是犯罪？",
     "relevant": ["《中华人民共和国刑法》第十七条", "《中华人民共和国刑法》第三百零三条"]},
    {"id": "s3", "query": "出售银行卡是犯罪吗",
     "relevant": ["《中华人民共和国刑法》第二百八十七条之二"]},
    {"id": "s4", "query": "谁可以申请撤销监护人的监护资格？",
     "relevant": ["《中华人民共和国民法典》第三十六条"]},
    {"id": "c1", "query": "《劳动合同法》第四十七条规定的经济补偿怎么算？",
     "relevant": ["《中华人民共和国劳动合同法》第四十七条"]},
    {"id": "c2", "query": "醉驾适用刑法第一百三十三条之一吗",
     "relevant": ["《中华人民共和国刑法》第一百三十三条之一"]},
    {"id": "c3", "query": "刑法第133条交通肇事罪怎么判",
     "relevant": ["《中华人民共和国刑法》第一百三十三条"]},
    {"id": "c4", "query": "根据劳动法第四十四条加班费怎么算",
     "relevant": ["《中华人民共和国劳动法》第四十四条"]},
    {"id": "u1", "query": "交通事故保险公司怎么赔？",
     "relevant": ["《中华人民共和国道路交通安全法》第七十六条",
                  "《中华人民共和国劳动法》第五百条"]},
]


@pytest.fixture
def small_queries(tmp_path) -> Path:
    p = tmp_path / "small.jsonl"
    p.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in SMALL_QUERIES),
                 encoding="utf-8")
    return p


@pytest.mark.slow
def test_end_to_end_over_a_small_real_index(small_index, small_queries, tmp_path):
    queries = load_queries(small_queries)
    report = run_eval(small_index, queries, modes=("bm25", "dense", "hybrid"),
                      ks=(1, 5, 10, 20), source=str(small_queries))
    by_id = {r.query.id: r for r in report.results}
    # Queries that name their article get it first, in every mode (exact lookup).
    for qid in ("c1", "c2", "c3", "c4"):
        assert {m: by_id[qid].ranks[m] for m in report.modes} == {
            "bm25": (1,), "dense": (1,), "hybrid": (1,)}, qid
    # The unresolved golds are listed and their query counts, as a miss.
    assert sorted(g.problem for _, g in report.unresolved) == [
        "unknown law '道路交通安全法'", "《劳动法》第五百条 is in no version of the law"]
    assert by_id["u1"].metrics["hybrid"]["recall@20"] == 0.0
    # Ranks are where the golds really are in the retriever's own result list.
    for r in report.results:
        for mode in report.modes:
            hits = small_index.search(r.query.query, k=report.depth, mode=mode)
            keys = [(h.article.law, h.article.number, h.article.suffix) for h in hits]
            for g, rank in zip(r.golds, r.ranks[mode], strict=True):
                expected = keys.index(g.key) + 1 if g.key in keys else None
                assert rank == expected, (r.query.id, mode, g.citation)
    # And the aggregate is the mean over all 9 queries, the unresolved one included.
    for mode in report.modes:
        hits1 = sum(r.metrics[mode]["hit@1"] for r in report.results)
        assert report.aggregate[mode]["hit@1"] == pytest.approx(hits1 / 9, abs=1e-12)
        assert report.aggregate[mode]["hit@1"] >= 4 / 9
    write_report(report, tmp_path / "out")
    assert (tmp_path / "out" / "per_query.csv").read_text(encoding="utf-8").count(
        NOT_FOUND) >= 6  # u1's two golds in three modes


@pytest.mark.slow
def test_cli_eval_writes_outputs_and_enforces_bounds(small_settings, small_queries, tmp_path,
                                                     capsys):
    from legalrag.cli import main

    base = ["--corpus", str(small_settings.corpus_dir),
            "--index-dir", str(small_settings.index_dir), "eval", str(small_queries),
            "--modes", "bm25,hybrid", "-k", "1,10", "--out", str(tmp_path / "o")]
    assert main([*base, "--fail-under", "hybrid:hit@10=0.3"]) == 0
    out = capsys.readouterr().out
    assert "| mode | Hit@1 | Hit@10 | Recall@1 | Recall@10 | MRR@10 | nDCG@10 |" in out
    assert "| hybrid |" in out and "| dense |" not in out
    assert json.loads((tmp_path / "o" / "eval.json").read_text(encoding="utf-8"))["queries"] == 9
    # u1 can never be found, so recall@10 = 1.0 is out of reach: exit 1, and say why.
    assert main([*base, "--fail-under", "hybrid:recall@10=1.0",
                 "--fail-under", "bm25:hit@1=0.1"]) == 1
    err = capsys.readouterr().err
    assert "hybrid recall@10 = " in err and "bm25 hit@1" not in err
    # A bound the run does not measure is an error before any search: exit 2.
    assert main([*base, "--fail-under", "hybrid:recall@100=0.5"]) == 2
    assert "recall@100, which is not measured" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_eval_split_keeps_one_part(small_settings, small_queries, tmp_path, capsys):
    from legalrag.cli import main
    from legalrag.index.tune import split_of

    ids = [json.loads(x)["id"] for x in small_queries.read_text(encoding="utf-8").splitlines()
           if x.strip()]
    base = ["--corpus", str(small_settings.corpus_dir),
            "--index-dir", str(small_settings.index_dir), "eval", str(small_queries),
            "--modes", "bm25", "-k", "1", "-q", "--out", str(tmp_path / "o")]
    for part in ("tune", "dev"):
        want = sum(split_of(i) == part for i in ids)
        code = main([*base, "--split", part])
        if want:
            assert code == 0
            report = json.loads((tmp_path / "o" / "eval.json").read_text(encoding="utf-8"))
            assert report["queries"] == want
        else:  # nothing left to measure: a clear error, not an empty table
            assert code == 2 and "no query falls in the dev part" in capsys.readouterr().err
