"""A chapter-level law share as a reranker feature: chosen out of fold like bench/try_rerankers.py.

    .venv/bin/python bench/try_chapter_share.py --cache POOLS [--out FILE]

POOLS is the pickle bench/try_rerankers.py --cache wrote (the candidate pools of every
question, with the product's features). The reranker's law_share counts how many of the
best 30 of each retriever belong to the candidate's law. Questions about one institution
(技术开发合同, 留置权) draw candidates from one chapter of a large law such as the 民法典,
where the law's share says little. The features tried here count at the level of the
candidate's headings instead: its first `depth` headings (编, 分编, 章, 节 as far as the law
has them), with the law. chap_share is the share of the best 30 in that part, chap_gap how
far the candidate's cosine is behind the best of its part. Each is added to the product's
features, with the article prior added at the product's weight, and judged by two-fold
cross-validation on the tune part (bench/try_rerankers.py); dev is reported beside.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

DEPTHS = (1, 2, 4)


def chapter_columns(row: dict, paths: dict, depth: int) -> np.ndarray:
    """row's features with chap_share and chap_gap appended."""
    from legalrag.retrieval.rerank import FEATURES, SHARE_TOP

    x = row["x"]
    part = [(k[0], *paths.get(k, ())[:depth]) for k in row["keys"]]
    top = ((x[:, FEATURES.index("log_rank_bm25")] <= math.log(SHARE_TOP))
           | (x[:, FEATURES.index("log_rank_dense")] <= math.log(SHARE_TOP)))
    counts = Counter(p for p, t in zip(part, top, strict=True) if t)
    dense = x[:, FEATURES.index("dense")]
    best: dict = {}
    for p, d in zip(part, dense, strict=True):
        best[p] = max(best.get(p, -1.0), d)
    share = np.array([counts[p] / max(1, int(top.sum())) for p in part])
    gap = np.array([best[p] - d for p, d in zip(part, dense, strict=True)])
    return np.hstack([x, share[:, None], gap[:, None]])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, required=True,
                    help="the pools of bench/try_rerankers.py --cache")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from try_rerankers import fold_sets, metrics, plus_prior

    from legalrag.config import Settings
    from legalrag.retrieval.rerank import FEATURES
    from legalrag.retrieval.retriever import Retriever

    retriever = Retriever.open(Settings.load(), verify=False)
    paths = {(a.law, a.number, a.suffix): a.path for a in retriever.articles if a.in_force}
    weight = retriever.settings.article_prior
    pools = pickle.loads(args.cache.read_bytes())
    product = list(range(len(FEATURES)))
    results = {}
    for depth in DEPTHS:
        rows = [{**r, "x": chapter_columns(r, paths, depth)} for r in pools]
        width = rows[0]["x"].shape[1]  # the prior's column comes next (with_prior)
        sets = fold_sets(rows)
        variants = {"product features": product,
                    f"+ chap_share, depth {depth}": [*product, width - 2],
                    f"+ chap_share + chap_gap, depth {depth}": [*product, width - 2, width - 1]}
        for name, cols in variants.items():
            if name in results:
                continue
            fit = plus_prior(cols, width, weight)
            cv = [metrics(scored, fit(trained)) for trained, scored in sets[:2]]
            results[name] = {
                "tune out of fold (2-fold CV)": {k: round((cv[0][k] + cv[1][k]) / 2, 4)
                                                 for k in cv[0]},
                "dev": metrics(sets[2][1], fit(sets[2][0]))}
            print(f"{name}: CV {results[name]['tune out of fold (2-fold CV)']}\n"
                  f"    dev {results[name]['dev']}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
