"""Deciding when retrieval found nothing relevant enough to answer from.

A small model given unrelated articles still writes a confident answer; better to say that
no relevant article was found and list the closest ones. The decision uses the retrieval
scores only (no generation): an exact citation in the question always answers; otherwise
the question is answered when the best dense cosine or the best BM25 score reaches its
threshold, and abstained from when both fall short. The thresholds are calibrated on the
STARD training questions against out-of-corpus questions (bench/calibrate_abstain.py;
numbers in docs/benchmarks.md, "Abstain calibration").

The cosine is the base embedding model's (the model that embedded the articles), not the
tuned query encoder's that ranks them. Training the query encoder to rank sharper spread
its cosines for legal and unrelated questions alike (out of corpus the rule's correct
abstentions fell from 92.5% to 83.8%) and moved them with every change of its training,
leaving calibrated thresholds behind. Neither the base model nor BM25 ever saw a STARD
question, so the thresholds are fitted on the tune part and checked on the dev part.

    >>> rule = AbstainRule(min_dense=0.8, min_bm25=20.0)
    >>> rule.abstains(Relevance(lookup=False, dense=0.71, bm25=6.5))
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from legalrag.records import Hit

MAX_QUERY_CHARS = 2000  # as retrieve.search cuts queries (not imported: it pulls in numpy)


@dataclass(frozen=True, slots=True)
class Relevance:
    """The evidence retrieval gives that the corpus can answer a question."""

    lookup: bool  # the question cites an article that exists
    dense: float  # best dense cosine (0.0 when no dense index)
    bm25: float  # best BM25 score (0.0 when no term matched)

    @classmethod
    def of(cls, hits: Sequence[Hit], best: Mapping[str, float] | None = None) -> Relevance:
        """From the hits, and each retriever's own best score where known (best): after
        fusion and the level prior, a retriever's top article is often not among the top
        k hits (a third of STARD questions for BM25), and its score is the evidence."""
        best = best or {}
        return cls(lookup=any("lookup" in h.ranks for h in hits),
                   dense=max([best.get("dense", 0.0),
                              *(h.scores.get("dense", 0.0) for h in hits)]),
                   bm25=max([best.get("bm25", 0.0),
                             *(h.scores.get("bm25", 0.0) for h in hits)]))


def measure(retriever: Any, query: str, hits: Sequence[Hit], mode: str = "hybrid",
            include_old: bool = False) -> Relevance:
    """The Relevance of a search: whether its hits hold a cited article, BM25's best score
    for the query, and the best cosine of the base embedding model (``Retriever.candidates``
    at depth 1: one more BM25 pass and one more question embedding). The hits' own dense
    scores are the tuned query encoder's and are not used."""
    query = query[:MAX_QUERY_CHARS]
    _, raw = retriever.candidates(query, 1, "bm25", include_old)
    best = {"bm25": max(raw.get("bm25", {}).values(), default=0.0)}
    if mode != "bm25" and retriever.dense is not None:
        vec = retriever.base_embedder.encode([query])
        _, raw = retriever.candidates(query, 1, "dense", include_old, vec)
        best["dense"] = max(raw["dense"].values(), default=0.0)
    lookups = [h for h in hits if "lookup" in h.ranks]
    return Relevance.of(lookups, best)


@dataclass(frozen=True, slots=True)
class AbstainRule:
    """Abstain when there is no exact citation and both scores are below threshold."""

    min_dense: float
    min_bm25: float

    def abstains(self, rel: Relevance) -> bool:
        if rel.lookup:
            return False
        return rel.dense < self.min_dense and rel.bm25 < self.min_bm25
