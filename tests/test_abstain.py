"""The abstain rule over retrieval scores (hand-written hits, exact decisions)."""

import pytest

from legalrag.records import Article, Hit
from legalrag.retrieval.abstain import AbstainRule, Relevance, measure

A = Article("中华人民共和国劳动法", "劳动法", "法律", "社会法", (), 36, 0, "第三十六条", "……",
            "2018-12-29", True, "劳动法.md", 1)
RULE = AbstainRule(min_dense=0.8, min_bm25=20.0)


def hit(rank, **scores):
    ranks = {name: rank for name in scores if name != "rrf"}
    return Hit(A, scores.get("rrf", 0.0), rank, ranks, dict(scores))


@pytest.mark.fast
def test_relevance_takes_the_best_scores_of_any_hit():
    hits = [hit(1, bm25=12.0, dense=0.7, rrf=0.03), hit(2, dense=0.75, rrf=0.02),
            hit(3, bm25=15.5, rrf=0.01)]
    assert Relevance.of(hits) == Relevance(lookup=False, dense=0.75, bm25=15.5)
    assert Relevance.of([]) == Relevance(False, 0.0, 0.0)


@pytest.mark.fast
def test_a_retrievers_own_best_score_counts_too():
    hits = [hit(1, dense=0.7, rrf=0.03)]
    assert Relevance.of(hits, {"bm25": 25.0, "dense": 0.65}) == Relevance(False, 0.7, 25.0)


def test_measure_uses_the_retrievers_best(small_index):
    query = "劳动者在试用期内提前三日通知用人单位可以解除劳动合同"
    hits = small_index.search(query, k=2)
    rel = measure(small_index, query, hits)
    vec = small_index.base_embedder.encode([query])
    _, raw = small_index.candidates(query, 100, vec=vec)
    assert rel.bm25 == max(raw["bm25"].values()) and rel.dense == max(raw["dense"].values())
    assert not rel.lookup
    # retrieval by BM25 alone takes no cosine (the assistant then uses the BM25-alone rule)
    assert measure(small_index, query, hits, mode="bm25").dense == 0.0
    assert measure(small_index, "劳动法第三十六条", small_index.search("劳动法第三十六条")).lookup


@pytest.mark.fast
def test_rule():
    assert RULE.abstains(Relevance(False, 0.79, 19.9))
    assert not RULE.abstains(Relevance(False, 0.80, 0.0))  # dense alone is enough
    assert not RULE.abstains(Relevance(False, 0.0, 20.0))  # and so is BM25
    assert not RULE.abstains(Relevance(True, 0.0, 0.0))  # a cited article always answers
    lookup = Hit(A, 1.0, 1, {"lookup": 1}, {"lookup": 1.0})
    assert not RULE.abstains(Relevance.of([lookup]))
    assert RULE.abstains(Relevance.of([]))
