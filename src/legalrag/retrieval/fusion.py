"""How the retrievers' rankings are combined: reciprocal rank fusion (a pure function), the
level/authority prior, and the trained reranker that hybrid mode applies on top."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from legalrag.retrieval.rerank import Reranker


def rrf(
    rankings: Mapping[str, Sequence[int]], k: int = 60, weights: Mapping[str, float] | None = None
) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: score(d) = Σ_r w_r / (k + rank_r(d)), ranks from 1.

    Returns (doc, score) best first; ties broken by doc id for determinism.

    >>> rrf({"a": [7, 8], "b": [8]}, k=60)
    [(8, 0.03252247488101534), (7, 0.01639344262295082)]
    """
    scores: dict[int, float] = defaultdict(float)
    for name, ranking in rankings.items():
        w = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] += w / (k + rank)
    return sorted(scores.items(), key=lambda x: (-x[1], x[0]))


@dataclass(frozen=True)
class Fusion:
    """How the retrievers are combined, and the document prior applied to the fused score.

    The prior multiplies a document's fused score by a weight for its level (a layperson's
    question is far more often answered by a 法律 than by one of the many 行政法规) and by
    1 + authority * log(1 + number of other laws' articles citing its law). The values in
    data/fusion.json are written by bench/tune_fusion.py from the tune split only.
    """

    rrf_k: int = 60
    weights: Mapping[str, float] | None = None
    level_weights: Mapping[str, float] | None = None
    authority: float = 0.0
    reranker: Reranker | None = None  # hybrid mode only; see legalrag.retrieval.rerank
    rerank_depth: int = 300  # candidates each retriever gives the reranker

    @classmethod
    def default(cls) -> Fusion:
        data = json.loads(resources.files("legalrag.data").joinpath("fusion.json").read_text())
        rerank = data.get("rerank")
        return cls(data["rrf_k"], data["weights"], data["level_weights"], data["authority"],
                   Reranker.from_dict(rerank) if rerank else None,
                   rerank["depth"] if rerank else 300)

    def prior(self, level: str, citations: int) -> float:
        w = (self.level_weights or {}).get(level, 1.0)
        return w * (1.0 + self.authority * math.log1p(citations))
