"""The linear reranker: features by hand, training on generated pools, the real index."""

import math
from dataclasses import replace

import numpy as np
import pytest

from legalrag.retrieval.rerank import FEATURES, Pool, Reranker, features, law_stem, train

META = [("劳动合同法", 46, "法律"), ("劳动合同法", 47, "法律"), ("劳动合同法", 48, "法律"),
        ("工资支付暂行规定", 18, "部门规章"), ("民法典", 1079, "法律")]


def col(x, name):
    return x[:, FEATURES.index(name)].tolist()


@pytest.mark.fast
def test_features_by_hand():
    # bm25 listed 1 then 3; dense listed 3, 0, 1; article 2 came from nowhere (not in pool)
    pool = Pool(ids=[1, 3, 0], bm25=[8.0, 4.0, 0.0], dense=[0.70, 0.90, 0.80],
                bm25_rank={1: 1, 3: 2}, dense_rank={3: 1, 0: 2, 1: 3})
    x = features(pool, META, "劳动合同解除后工资怎么算")
    assert x.shape == (3, len(FEATURES))
    assert col(x, "rrf_bm25") == pytest.approx([1 / 61, 1 / 62, 0.0])
    assert col(x, "rrf_dense") == pytest.approx([1 / 63, 1 / 61, 1 / 62])
    # an unlisted candidate gets rank (longest list + 50) = 53
    assert col(x, "log_rank_bm25") == pytest.approx([0.0, math.log(2), math.log(53)])
    assert col(x, "bm25_rel") == pytest.approx([1.0, 0.5, 0.0])
    assert col(x, "dense_gap") == pytest.approx([0.2, 0.0, 0.1])
    # top-30 of both lists: 1, 3, 3, 0, 1 → 劳动合同法 3 of 5, the regulation 2 of 5
    assert col(x, "law_share") == pytest.approx([0.6, 0.4, 0.6])
    # best cosine of 劳动合同法 among candidates is 0.80 (article 0)
    assert col(x, "law_gap") == pytest.approx([0.1, 0.0, 0.1])
    assert col(x, "law_named") == [1.0, 0.0, 1.0]
    # 47's neighbour 46 (row 0) is a candidate; 46's neighbour 47 is too
    assert col(x, "next_dense") == pytest.approx([0.80, 0.0, 0.70])
    assert col(x, "next_bm25") == pytest.approx([0.0, 0.0, 1.0])
    assert col(x, "level_部门规章") == [0.0, 1.0, 0.0]


@pytest.mark.fast
def test_empty_pool():
    x = features(Pool([], [], [], {}, {}), META, "问题")
    assert x.shape == (0, len(FEATURES))


@pytest.mark.fast
def test_law_stem():
    assert law_stem("劳动合同法") == "劳动合同"
    assert law_stem("个体工商户条例") == "个体工商户"
    assert law_stem("民法典") == "民法典"
    assert law_stem("宪法") == "宪法"  # a one-character stem would match anything


@pytest.mark.fast
def test_score_and_order_by_hand():
    weights = np.zeros(len(FEATURES))
    weights[FEATURES.index("dense")] = 2.0
    weights[FEATURES.index("law_named")] = -1.0
    mean = np.full(len(FEATURES), 0.5)
    rr = Reranker(mean, np.full(len(FEATURES), 0.5), weights)
    x = np.zeros((4, len(FEATURES)))
    x[:, FEATURES.index("dense")] = [0.1, 0.9, 0.5, 0.9]
    x[:, FEATURES.index("law_named")] = [0.0, 1.0, 0.0, 0.0]
    # (0.1−0.5)/0.5·2 − (0−0.5)/0.5 = −0.6; 1.6 − 1 = 0.6; 0 + 1 = 1; 1.6 + 1 = 2.6
    assert rr.score(x) == pytest.approx([-0.6, 0.6, 1.0, 2.6])
    assert rr.order(x) == [3, 2, 1, 0]


@pytest.mark.fast
def test_training_finds_the_feature_that_marks_gold():
    rng = np.random.default_rng(0)
    pools = []
    for _ in range(60):
        x = rng.normal(size=(40, len(FEATURES)))
        y = np.zeros(40, dtype=bool)
        gold = rng.integers(40)
        y[gold] = True
        x[gold, FEATURES.index("next_dense")] += 5.0  # only this feature tells gold apart
        pools.append((x, y))
    rr = train(pools[:40])
    w = rr.weights
    assert w[FEATURES.index("next_dense")] == max(w)
    assert w[FEATURES.index("next_dense")] > 3 * np.abs(np.delete(w, FEATURES.index(
        "next_dense"))).max()
    # it generalizes to pools it did not see: gold first in most
    firsts = [int(np.argmax(rr.score(x))) == int(np.argmax(y)) for x, y in pools[40:]]
    assert sum(firsts) >= 18


@pytest.mark.fast
def test_training_without_any_gold_is_refused():
    x = np.zeros((3, len(FEATURES)))
    with pytest.raises(ValueError, match="no question"):
        train([(x, np.zeros(3, dtype=bool))])


@pytest.mark.fast
def test_weights_round_trip_and_feature_mismatch():
    rr = Reranker(np.arange(len(FEATURES), dtype=float), np.ones(len(FEATURES)),
                  np.linspace(-1, 1, len(FEATURES)))
    again = Reranker.from_dict(rr.to_dict())
    assert np.allclose(again.weights, rr.weights) and np.allclose(again.mean, rr.mean)
    bad = rr.to_dict()
    bad["features"] = bad["features"][:-1]
    with pytest.raises(ValueError, match="tune_fusion"):
        Reranker.from_dict(bad)


@pytest.mark.fast
def test_shipped_fusion_has_a_reranker():
    from legalrag.retrieval.fusion import Fusion

    fusion = Fusion.default()
    assert fusion.reranker is not None
    assert fusion.rerank_depth >= 100


@pytest.fixture(scope="module")
def reranked(small_settings):
    """The small index with the shipped weights and reranker forced on (its questions go
    through the base model, for which the retriever would otherwise use plain RRF), and
    the cross-encoder after it off (tests/test_cross.py)."""
    from legalrag.retrieval.fusion import Fusion
    from legalrag.retrieval.retriever import Retriever

    return Retriever.open(replace(small_settings, cross_encoder=""), fusion=Fusion.default())


def test_base_encoder_gets_plain_rrf(small_index):
    # The shipped weights were fitted on the tuned encoder's cosines.
    assert small_index.query_encoder == "base"
    assert small_index.fusion.reranker is None and small_index.fusion.weights is None


def test_pool_scores_are_exact(reranked):
    small_index = reranked
    query = "用人单位拖欠劳动报酬怎么办"
    vec = small_index.embedder.encode([query])
    rankings, raw = small_index.candidates(query, 20, vec=vec)
    pool = small_index.pool(query, rankings, raw, vec)
    assert set(pool.ids) == set(rankings["bm25"]) | set(rankings["dense"])
    full = small_index.bm25.get_scores(
        [t for t in small_index.segmenter.tokenize(query) if t in small_index.bm25.vocab_dict])
    stored = small_index.dense.reconstruct_batch(np.asarray(pool.ids, dtype=np.int64))
    assert pool.bm25 == pytest.approx([float(full[d]) for d in pool.ids], rel=1e-6)
    assert pool.dense == pytest.approx((stored @ vec[0]).tolist(), abs=1e-5)
    # somebody listed by only one retriever still has the other's score
    only_bm25 = [d for d in rankings["bm25"] if d not in raw["dense"]]
    assert only_bm25 and all(pool.dense[pool.ids.index(d)] != 0.0 for d in only_bm25)


def test_hybrid_search_is_reranked(reranked):
    small_index = reranked
    hits = small_index.search("试用期内公司可以随便辞退我吗", k=10)
    # a hit placed by a cross-reference (settings.cross_references) is placed below the hit
    # citing it whatever its score (tests/test_crossref.py); the rest are in score order
    ranked = [h for h in hits if "xref" not in h.scores]
    assert len(ranked) >= 7 and all("rerank" in h.scores for h in ranked)
    scores = [h.score for h in ranked]
    assert scores == sorted(scores, reverse=True)
    assert all(h.score == h.scores["rerank"] and h.scores["rrf"] >= 0 for h in ranked)
    bm25 = small_index.search("试用期内公司可以随便辞退我吗", k=10, mode="bm25")
    assert all("rerank" not in h.scores for h in bm25)  # single modes are not reranked
