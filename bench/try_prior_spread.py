"""The article prior spread to an article's chapter and neighbours: chosen out of fold.

    .venv/bin/python bench/try_prior_spread.py --cache POOLS [--out FILE]

POOLS is the pickle bench/try_rerankers.py --cache wrote. The product's article prior
counts how many tune questions have the candidate itself as a gold article, so an article
no tune question needed gets nothing, however often questions land on the articles around
it. Of the dev part's gold articles, 183 of 407 are such articles, and the prior lowers
them. The counts tried here spread the prior over the corpus's own structure:

- part_prior (depth d): log(1 + how many gold articles of the training questions lie in
  the candidate's part), a part being the law with its first d headings (编, 分编, 章, 节 as
  far as the law has them); part_rate: that count divided by the part's in-force articles;
- next_prior: log(1 + the counts of 第N−1条 and 第N+1条 of the same law).

Counted like the product's prior: over the training questions only, each question
leaving its own gold articles out. Each is tried as a feature of the linear model and
added to its score with a fixed weight, beside the article prior at the product's weight,
and judged by two-fold cross-validation on the tune part (bench/try_rerankers.py); dev is
reported beside and not used to choose.

    .venv/bin/python bench/try_prior_spread.py --product 0 0.25

runs the product's whole search (cross-encoder and cross-references included) over the dev
part instead, with W x log(1 + the law's count of tune gold articles) added to the article
prior of every article, for each W given: the law-level count as it would ship.
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

DEPTHS = (0, 1, 2)  # 0: the whole law
WEIGHTS = (0.1, 0.25, 0.5)


def part_of(key: tuple, paths: dict, depth: int) -> tuple:
    return (key[0], *paths.get(key, ())[:depth])


def spread(rows: list[dict], source: list[dict], paths: dict, sizes: dict,
           depth: int) -> list[dict]:
    """rows with part_prior, part_rate and next_prior appended, counted over the source
    questions' gold articles, each question leaving itself out."""
    from try_rerankers import distinct

    art: Counter = Counter()
    part: Counter = Counter()
    once = distinct(source)
    seen = {r["id"] for r in once}
    for r in once:
        art.update(r["gold"])
        part.update(part_of(g, paths, depth) for g in r["gold"])
    out = []
    for r in rows:
        own = r["id"] in seen
        own_parts = Counter(part_of(g, paths, depth) for g in r["gold"]) if own else Counter()
        own_arts = set(r["gold"]) if own else set()
        cols = np.zeros((len(r["keys"]), 3))
        for j, k in enumerate(r["keys"]):
            p = part_of(k, paths, depth)
            n = part[p] - own_parts[p]
            near = sum(art.get((k[0], k[1] + d, 0), 0) - ((k[0], k[1] + d, 0) in own_arts)
                       for d in (-1, 1))
            cols[j] = (math.log1p(n), n / max(1, sizes.get(p, 1)), math.log1p(near))
        out.append({**r, "x": np.hstack([r["x"], cols])})
    return out


def product_check(weights: list[float]) -> dict:
    """Dev through the product's search, the law-level count added at each weight."""
    from legalrag.config import Settings
    from legalrag.index.tune import read_prior, split_of
    from legalrag.retrieval.evaluate import load_queries, run_eval
    from legalrag.retrieval.retriever import Retriever

    retriever = Retriever.open(Settings.load())
    counts = read_prior(Path(retriever.query_encoder)) or {}
    law: Counter = Counter()
    for (name, _, _), c in counts.items():
        law[name] += c
    m = np.log1p([law.get(a.law, 0) for a in retriever.articles])
    article = retriever.article_prior.copy()
    queries = [q for q in load_queries(ROOT / "data/eval/stard_train.jsonl")
               if split_of(q.id) == "dev"]
    out = {}
    for w in weights:
        retriever.article_prior = article + w * m
        agg = run_eval(retriever, queries, modes=("hybrid",), ks=(5, 10, 100)).aggregate["hybrid"]
        out[f"law count x {w}"] = {k: round(agg[k], 4) for k in
                                   ("hit@5", "recall@5", "recall@10", "recall@100", "mrr@10")}
        print(w, out[f"law count x {w}"], flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, help="the pools of bench/try_rerankers.py --cache")
    ap.add_argument("--product", type=float, nargs="+", metavar="W",
                    help="check the law-level count through the product's search on dev")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.product:
        results = product_check(args.product)
        if args.out:
            args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
        return 0
    if not args.cache:
        ap.error("give --cache POOLS, or --product W ...")
    from try_rerankers import fold_sets, linear, metrics

    from legalrag.config import Settings
    from legalrag.retrieval.rerank import FEATURES
    from legalrag.retrieval.retriever import Retriever

    retriever = Retriever.open(Settings.load(), verify=False)
    in_force = [a for a in retriever.articles if a.in_force]
    paths = {(a.law, a.number, a.suffix): a.path for a in in_force}
    weight = retriever.settings.article_prior
    pools = pickle.loads(args.cache.read_bytes())
    base_sets = fold_sets(pools)  # the article prior is the last column of each row
    product = list(range(len(FEATURES)))
    results = {}

    def judge(name, fit, sets):
        cv = [metrics(scored, fit(trained)) for trained, scored in sets[:2]]
        cv_mean = {k: round((cv[0][k] + cv[1][k]) / 2, 4) for k in cv[0]}
        results[name] = {"tune out of fold (2-fold CV)": cv_mean,
                         "dev": metrics(sets[2][1], fit(sets[2][0])),
                         "R@5 + R@10 + MRR@10, out of fold":
                             round(cv_mean["R@5"] + cv_mean["R@10"] + cv_mean["MRR@10"], 4)}
        print(f"{name}: CV {cv_mean} (sum {results[name]['R@5 + R@10 + MRR@10, out of fold']})"
              f"\n    dev {results[name]['dev']}", flush=True)

    def scored(cols, prior, extra=None, w=0.0):
        """The linear model over cols, plus the article prior at the product's weight and
        w times the extra column."""
        def fit(rows):
            scorer = linear(cols)(rows)
            if extra is None:
                return lambda x: scorer(x) + weight * x[:, prior]
            return lambda x: scorer(x) + weight * x[:, prior] + w * x[:, extra]
        return fit

    for depth in DEPTHS:
        sizes = Counter(part_of(k, paths, depth) for k in paths)
        sets = [(spread(a, a_src, paths, sizes, depth), spread(b, a_src, paths, sizes, depth))
                for (a, b), a_src in zip(base_sets, [s[0] for s in base_sets], strict=True)]
        width = sets[0][0][0]["x"].shape[1]
        prior = width - 6  # fold_sets appended prior, prior_seen, cogold
        part_prior, part_rate, next_prior = width - 3, width - 2, width - 1
        if depth == DEPTHS[0]:
            judge("product (linear + article prior)", scored(product, prior), sets)
            judge("+ next_prior as a feature", scored([*product, next_prior], prior), sets)
            for w in WEIGHTS:
                judge(f"+ {w} x next_prior added", scored(product, prior, next_prior, w), sets)
        judge(f"+ part_prior, depth {depth}, as a feature",
              scored([*product, part_prior], prior), sets)
        judge(f"+ part_rate, depth {depth}, as a feature",
              scored([*product, part_rate], prior), sets)
        for w in WEIGHTS:
            judge(f"+ {w} x part_prior, depth {depth}, added",
                  scored(product, prior, part_prior, w), sets)
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
