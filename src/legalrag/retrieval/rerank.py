"""A linear reranker over the fused candidates: which of them answers the question.

Reciprocal rank fusion only sees ranks. The reranker also sees *how* each retriever scored
an article and what surrounds it: the exact BM25 score and cosine for every candidate
(not only where it ranked in its own list), how far it is behind the best one, whether its
neighbours (第N−1条, 第N+1条) scored too, how much of the top of both lists comes from its
law, whether the question names its law, and its level. A layperson's question about
wages pulls in many articles that share its words; the ones of the law most of the
evidence points at, whose neighbours match too, tend to be right.

The weights are a plain linear model (features standardized, one weight each), trained by
``train`` as a class-balanced logistic regression (gold article or not) on the STARD tune
split's candidates (bench/tune_fusion.py) and shipped in data/fusion.json. It orders the
whole candidate pool; the fused RRF score is kept on each hit for display.

    >>> pool = Pool(ids=[3, 5], bm25=[2.0, 0.0], dense=[0.8, 0.9],
    ...             bm25_rank={3: 1}, dense_rank={5: 1, 3: 2})
    >>> features(pool, [("劳动法", 1, "法律")] * 6, "加班")[:, FEATURES.index("dense_gap")]
    array([0.1, 0. ])
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVELS = ("法律", "行政法规", "司法解释", "部门规章")
FEATURES = (
    "rrf_bm25", "rrf_dense", "log_rank_bm25", "log_rank_dense", "bm25_rel", "dense",
    "dense_gap", "law_share", "law_gap", "law_named", "next_dense", "next_bm25",
    *(f"level_{lv}" for lv in LEVELS),
)
RRF_K = 60
SHARE_TOP = 30  # the top of each list that law_share counts
_STEM = re.compile(r"(法|条例|规定|办法|决定|解释)$")


@dataclass(frozen=True)
class Pool:
    """The candidates of one question: article rows, their exact scores, and ranks.

    bm25 and dense are the exact scores of every candidate (aligned with ids), including
    those the other retriever did not list; the rank maps hold only listed candidates.
    """

    ids: list[int]
    bm25: list[float]
    dense: list[float]
    bm25_rank: dict[int, int]
    dense_rank: dict[int, int]


def law_stem(law: str) -> str:
    """The part of a short title a question would use: 劳动合同法 → 劳动合同."""
    stem = _STEM.sub("", law)
    return stem if len(stem) >= 2 else law


def features(pool: Pool, meta: Sequence[tuple[str, int, str]], question: str) -> np.ndarray:
    """One row of FEATURES per candidate; meta[row] is (law, article number, level)."""
    n = len(pool.ids)
    out = np.zeros((n, len(FEATURES)), dtype=np.float64)
    if n == 0:
        return out
    bm25 = np.asarray(pool.bm25, dtype=np.float64)
    dense = np.asarray(pool.dense, dtype=np.float64)
    bmax = float(bm25.max()) if bm25.max() > 0 else 1.0
    dmax = float(dense.max())
    depth = max(len(pool.bm25_rank), len(pool.dense_rank)) + 50  # rank of the unlisted
    laws = [meta[d][0] for d in pool.ids]
    top = [d for d, r in pool.bm25_rank.items() if r <= SHARE_TOP]
    top += [d for d, r in pool.dense_rank.items() if r <= SHARE_TOP]
    share = Counter(meta[d][0] for d in top)
    law_best: dict[str, float] = defaultdict(lambda: -1.0)
    at: dict[tuple[str, int], int] = {}
    for j, d in enumerate(pool.ids):
        law_best[laws[j]] = max(law_best[laws[j]], dense[j])
        at[(laws[j], meta[d][1])] = j
    named = {law: float(law_stem(law) in question) for law in set(laws)}
    for j, d in enumerate(pool.ids):
        law, number, level = meta[d]
        rb, rd = pool.bm25_rank.get(d), pool.dense_rank.get(d)
        nb = [at[(law, number + o)] for o in (-1, 1) if (law, number + o) in at]
        out[j] = (
            1.0 / (RRF_K + rb) if rb else 0.0,
            1.0 / (RRF_K + rd) if rd else 0.0,
            math.log(rb or depth),
            math.log(rd or depth),
            bm25[j] / bmax,
            dense[j],
            dmax - dense[j],
            share[law] / max(1, len(top)),
            dmax - law_best[law],
            named[law],
            max((dense[i] for i in nb), default=0.0),
            max((bm25[i] / bmax for i in nb), default=0.0),
            *(float(level == lv) for lv in LEVELS),
        )
    return out


@dataclass(frozen=True)
class Reranker:
    """score = ((x − mean) / scale) · weights, over FEATURES; higher is better."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray

    @classmethod
    def from_dict(cls, data: dict) -> Reranker:
        if tuple(data["features"]) != FEATURES:
            raise ValueError("the reranker weights were trained on other features; "
                             "rerun bench/tune_fusion.py --write")
        return cls(np.asarray(data["mean"]), np.asarray(data["scale"]),
                   np.asarray(data["weights"]))

    def to_dict(self) -> dict:
        return {"features": list(FEATURES),
                "mean": [round(float(x), 6) for x in self.mean],
                "scale": [round(float(x), 6) for x in self.scale],
                "weights": [round(float(x), 6) for x in self.weights]}

    def score(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weights

    def order(self, x: np.ndarray) -> list[int]:
        """Positions in the pool, best first (ties keep pool order)."""
        return [int(i) for i in np.argsort(-self.score(x), kind="stable")]


def train(pools: Sequence[tuple[np.ndarray, np.ndarray]], *, steps: int = 300,
          lr: float = 0.05, l2: float = 1e-3) -> Reranker:
    """Fit the weights on (features, gold mask) per question: logistic regression with the
    gold candidates weighted up to balance the classes (a few golds among hundreds of
    candidates per question), full-batch Adam from zero, so deterministic."""
    pools = [(x, y.astype(bool)) for x, y in pools]
    gold = np.concatenate([y for _, y in pools]) if pools else np.zeros(0, dtype=bool)
    if not gold.any():
        raise ValueError("no question has a gold article among its candidates")
    x = np.concatenate([x for x, _ in pools])
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-9] = 1.0
    x = (x - mean) / scale
    weight = np.where(gold, (len(gold) - gold.sum()) / gold.sum(), 1.0) / len(gold)
    w = np.zeros(x.shape[1] + 1)  # the last one is the bias
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t in range(1, steps + 1):
        p = 1.0 / (1.0 + np.exp(-(x @ w[:-1] + w[-1])))
        r = (p - gold) * weight
        grad = np.append(x.T @ r + l2 * w[:-1], r.sum())
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        w -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return Reranker(mean, scale, w[:-1])
