"""Does a deeper or wider candidate pool pay? The reranker retrained and judged for each.

    .venv/bin/python bench/try_pool_depth.py --encoders /tmp/enc --depth 300 600 1000 \
        [--base] [--out bench/results/pool_depth.json]

The reranker orders the union of the best `rerank_depth` articles of BM25 and of dense
(300 each). A gold article outside that pool can never be retrieved, and on the dev part
about one in ten is. This script asks whether taking more of each list would let the
reranker find them, with the reranker trained for that depth, and judged out of fold:

- every tune question is retrieved by the fold encoder that never saw it (the encoders
  and article priors bench/tune_fusion.py keeps in --encoders), its pool built at each
  depth with the product's feature code, and its score given the fold's article prior,
  as the product adds the prior to the reranker's score;
- the reranker is trained on one fold's pools and judges the other fold's (two-fold
  cross-fitting), so no question is ranked by weights that saw it;
- for the dev part, a reranker trained on all the tune pools ranks dev pools retrieved by
  the index's own encoder with its prior (the product's path without the cross-encoder).

With --base each depth is also tried with the base model (m3e-small as installed, which
embedded the articles; the index's query encoder is a fine-tuned copy) as a third
retriever: its cosine, its gap to its best and the log of its rank as three more
features, and its best `depth` articles joined to the pool. It costs one more question
embedding and one more search per question, and it has not seen the tune questions.

With --product the shipped reranker (trained at 300) is run at each depth through the
product's own search and `run_eval`, without retraining: the dev part as the product
ships (cross-encoder on), the tune part out of fold through the fold encoders (cross-
encoder off: it learned the tune questions).

Reported per depth: the share of gold articles the pool holds, and Recall@5/10/100 and
MRR@10 of the reranker's order (before the cross-encoder, which only reorders the top 20).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def pools(retriever, questions: list[dict], depth: int, keys, base=None) -> list[dict]:
    """Each question's features, gold mask and article prior over its pool at depth; with
    base (the base embedder and the stored article vectors), also "x_base" and "y_base":
    the base model's three features appended, over the pool widened by its best depth."""
    from tune_fusion import gold_keys

    from legalrag.retrieval.rerank import Pool, features

    out = []
    for q in questions:
        vec = retriever.embedder.encode([q["query"]])
        rankings, raw = retriever.candidates(q["query"], depth, vec=vec)
        pool = retriever.pool(q["query"], rankings, raw, vec)
        gold = gold_keys(retriever, q["relevant"])
        prior = (retriever.article_prior if retriever.article_prior is not None
                 else np.zeros(len(keys)))
        x = features(pool, retriever.meta, q["query"])
        row = {"x": x, "prior": prior[pool.ids], "n": len(q["relevant"]),
               "y": np.array([keys[d] in gold for d in pool.ids])}
        if base is not None:
            embedder, vectors = base
            cos = vectors @ embedder.encode([q["query"]])[0]
            cos = np.where(retriever.in_force, cos, -np.inf)
            order = np.argsort(-cos, kind="stable")
            rank = np.empty(len(cos), dtype=np.int64)
            rank[order] = np.arange(1, len(cos) + 1)
            listed = set(pool.ids)
            extra = [int(d) for d in order[:depth] if int(d) not in listed]
            if extra:  # exact scores for the joined articles, as Retriever.pool gives
                tokens = [t for t in retriever.segmenter.tokenize(q["query"])
                          if t in retriever.bm25.vocab_dict]
                bm25 = (retriever.bm25.get_scores(tokens) if tokens
                        else np.zeros(len(keys)))
                stored = vectors[extra] @ vec[0]
                pool = Pool(pool.ids + extra, pool.bm25 + [float(bm25[d]) for d in extra],
                            pool.dense + stored.tolist(), pool.bm25_rank, pool.dense_rank)
            c = cos[pool.ids]
            row["x_base"] = np.hstack([features(pool, retriever.meta, q["query"]),
                                       np.stack([c, c.max() - c,
                                                 np.log(np.minimum(rank[pool.ids], 1000))], 1)])
            row["y_base"] = np.array([keys[d] in gold for d in pool.ids])
            row["prior_base"] = prior[pool.ids]
        out.append(row)
    return out


def judge(rows: list[dict], reranker) -> dict[str, float]:
    """Pool coverage, Recall@5/10/100 and MRR@10 of reranker score + prior, per question."""
    m = {"pool": 0.0, "R@5": 0.0, "R@10": 0.0, "R@100": 0.0, "MRR@10": 0.0}
    for row in rows:
        y = row["y"][np.argsort(-(reranker.score(row["x"]) + row["prior"]), kind="stable")]
        m["pool"] += y.sum() / row["n"]
        for k in (5, 10, 100):
            m[f"R@{k}"] += y[:k].sum() / row["n"]
        first = np.flatnonzero(y[:10])
        m["MRR@10"] += 1.0 / (first[0] + 1) if len(first) else 0.0
    return {k: round(v / len(rows), 4) for k, v in m.items()}


def product_runs(args, fold_of) -> list[dict]:
    """Hybrid Recall@5/10/100 and MRR@10 of the product's search at each depth, the
    shipped reranker unchanged: dev as shipped, tune out of fold without the cross-encoder."""
    from legalrag.config import Settings
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import load_queries, run_eval
    from legalrag.retrieval.fusion import Fusion
    from legalrag.retrieval.retriever import Retriever

    queries = load_queries(args.queries)
    settings = Settings.load()
    product = Retriever.open(settings, verify=False)
    table = []
    for depth in args.depth:
        fusion = replace(Fusion.default(), rerank_depth=depth)
        row: dict = {"depth": depth, "pool": "the shipped reranker, product search"}
        parts = [("dev", [q for q in queries if split_of(q.id) == "dev"],
                  Retriever(product.build_dir, settings, verify=False, fusion=fusion))]
        for fold in (0, 1):
            parts.append((f"tune fold {fold}",
                          [q for q in queries if split_of(q.id) == "tune"
                           and fold_of(q.id) == fold],
                          Retriever(product.build_dir,
                                    replace(settings, cross_encoder="",
                                            query_encoder=str(args.encoders / f"fold{fold}")),
                                    verify=False, fusion=fusion)))
        for name, part, retriever in parts:
            m = run_eval(retriever, part, modes=["hybrid"], ks=[5, 10, 100]).aggregate["hybrid"]
            row[name] = {k: round(v, 4) for k, v in m.items()
                         if k in ("recall@5", "recall@10", "recall@100", "mrr@10")}
            row[name]["questions"] = len(part)
        n0, n1 = row["tune fold 0"]["questions"], row["tune fold 1"]["questions"]
        row["tune_oof"] = {k: round((row["tune fold 0"][k] * n0 + row["tune fold 1"][k] * n1)
                                    / (n0 + n1), 4) for k in row["dev"] if k != "questions"}
        table.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--encoders", type=Path, required=True,
                    help="the fold encoders of bench/tune_fusion.py (trained there if missing)")
    ap.add_argument("--depth", type=int, nargs="+", default=[300, 600, 1000])
    ap.add_argument("--base", action="store_true",
                    help="also try the base model as a third retriever (features and pool)")
    ap.add_argument("--product", action="store_true",
                    help="run the shipped reranker at each depth through the product's search")
    ap.add_argument("--out", type=Path, help="write the table here (JSON)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tune_fusion import fold_encoders, fold_of

    from legalrag.config import Settings
    from legalrag.index.embed import load_embedder
    from legalrag.index.tune import split_of
    from legalrag.retrieval.fusion import Fusion
    from legalrag.retrieval.rerank import train
    from legalrag.retrieval.retriever import Retriever

    questions = [json.loads(x) for x in args.queries.read_text(encoding="utf-8").splitlines()
                 if x.strip()]
    product = Retriever.open(replace(Settings.load(), cross_encoder=""), fusion=Fusion())
    keys = [(a.law, a.number, a.suffix) for a in product.articles]
    folds = [Retriever(product.build_dir, replace(product.settings, query_encoder=str(p)),
                       verify=False, fusion=Fusion())
             for p in fold_encoders(product, questions, args.encoders)]
    tune = [[q for q in questions if split_of(q["id"]) == "tune" and fold_of(q["id"]) == f]
            for f in (0, 1)]
    dev = [q for q in questions if split_of(q["id"]) == "dev"]
    base = None
    if args.base:
        base = (load_embedder(product.settings),
                product.dense.reconstruct_n(0, product.dense.ntotal))
    table = product_runs(args, fold_of) if args.product else []
    for depth in args.depth if not args.product else []:
        t0 = time.perf_counter()
        oof = [pools(folds[f], tune[f], depth, keys, base) for f in (0, 1)]
        dev_rows = pools(product, dev, depth, keys, base)
        seconds = time.perf_counter() - t0
        for name, suffix in (("two retrievers", ""), ("with the base model", "_base")):
            if suffix and base is None:
                continue
            oof_v = [[{"x": r["x" + suffix], "y": r["y" + suffix], "prior": r["prior" + suffix],
                       "n": r["n"]} for r in part] for part in oof]
            dev_v = [{"x": r["x" + suffix], "y": r["y" + suffix], "prior": r["prior" + suffix],
                      "n": r["n"]} for r in dev_rows]
            fitted = [train([(r["x"], r["y"]) for r in oof_v[1 - f]]) for f in (0, 1)]
            per_fold = [judge(oof_v[f], fitted[f]) for f in (0, 1)]
            n = [len(oof_v[0]), len(oof_v[1])]
            tune_m = {k: round((per_fold[0][k] * n[0] + per_fold[1][k] * n[1]) / sum(n), 4)
                      for k in per_fold[0]}
            dev_m = judge(dev_v, train([(r["x"], r["y"]) for r in oof_v[0] + oof_v[1]]))
            table.append({"depth": depth, "pool": name, "tune_oof": tune_m, "dev": dev_m,
                          "pool_size_mean": round(float(np.mean([len(r["y"]) for r in dev_v])),
                                                  1),
                          "seconds": round(seconds)})
            print(json.dumps(table[-1], ensure_ascii=False), flush=True)
    if args.out:
        args.out.write_text(json.dumps(table, ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
