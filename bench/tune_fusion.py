"""Tune fusion weights, the document prior and the reranker on the STARD tune split.

    .venv/bin/python bench/tune_fusion.py [--depth 300] [--write]

Retrieves BM25 and dense candidates (the best --depth of each, 300 by default) once per
question from the live index, then grid-searches: dense weight in RRF, the level weights
of 行政法规/部门规章 and 司法解释, and the authority strength. The objective is
Recall@10 + Recall@100 + MRR@10 on the tune split. Then it trains the linear reranker
(legalrag.retrieval.rerank) on the tune split's candidate pools, with the product's own
feature code. Dev questions (see legalrag.index.tune.split_of) are never used to choose;
they are reported beside.

The index's query encoder was trained on the tune questions and ranks their gold articles
better than it will a new question's, so a reranker trained on those pools alone learns
to trust the cosine too much. So it also sees each tune question retrieved *out of fold*:
the tune questions are split in two folds (a hash of the id); for each, a query encoder is
trained on the other fold with the same TuneConfig, and the fold's pools come from it. The
reranker is trained on both sets of pools: a user's question may be close to one the
encoder learned, or new. The two trainings take about two minutes each; --encoders DIR
keeps them.
With --write the result goes to src/legalrag/data/fusion.json.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def gold_keys(retriever, relevant: list[str]) -> set[tuple[str, int, int]]:
    from legalrag.citations import find_citations

    out = set()
    for cite in relevant:
        for ref in find_citations(cite):
            law = retriever.names.resolve(ref.law)
            if law:
                out.add((law, ref.number, ref.suffix))
    return out


def fused_order(row, prior_of, rrf_k, w_dense) -> list[int]:
    fused: dict[int, float] = defaultdict(float)
    for rank, d in enumerate(row["bm25"], 1):
        fused[d] += 1.0 / (rrf_k + rank)
    for rank, d in enumerate(row["dense"], 1):
        fused[d] += w_dense / (rrf_k + rank)
    return sorted(fused, key=lambda d: (-fused[d] * prior_of[d], d))


def score(rows, keys, prior_of, rrf_k, w_dense, reranker=None) -> tuple[float, float, float]:
    r10 = r100 = mrr = 0.0
    for row in rows:
        top = fused_order(row, prior_of, rrf_k, w_dense)
        if reranker is not None:
            top = [row["pool"].ids[j] for j in reranker.order(row["x"])]
        top = top[:100]
        got = [keys[d] for d in top]
        gold, n = row["gold"], row["n"]
        r10 += len(gold & set(got[:10])) / n
        r100 += len(gold & set(got)) / n
        mrr += next((1 / (i + 1) for i, k in enumerate(got[:10]) if k in gold), 0.0)
    return r10 / len(rows), r100 / len(rows), mrr / len(rows)


def cached(path: Path | None, make):
    """make()'s result, kept in path (pickle) and read from there when it exists."""
    import pickle

    if path and path.exists():
        return pickle.loads(path.read_bytes())
    value = make()
    if path:
        path.write_bytes(pickle.dumps(value))
    return value


def fold_of(query_id: str) -> int:
    return int(hashlib.sha1(query_id.encode("utf-8")).hexdigest(), 16) % 2


def fold_encoders(retriever, questions: list[dict], encoders: Path) -> list[Path]:
    """Two query encoders (TuneConfig): encoder i is trained on the tune questions outside
    fold i, so it has never seen a question with fold_of(id) == i, and beside it the article
    prior (PRIOR_FILE) counted over the same questions. Kept in encoders/ and reused when
    there."""
    from legalrag.index.embed import embedding_model_dir
    from legalrag.index.tune import (
        PRIOR_FILE,
        TuneConfig,
        fine_tune_queries,
        gold_counts,
        make_examples,
        split_of,
    )

    tune = [q for q in questions if split_of(q["id"]) == "tune"]
    vectors = retriever.dense.reconstruct_n(0, retriever.dense.ntotal)
    base = embedding_model_dir(retriever.settings.embedding_model)
    paths = []
    for fold in (0, 1):
        path = encoders / f"fold{fold}"
        if not (path / "legalrag-tune.json").exists():
            examples, rows = make_examples([q for q in tune if fold_of(q["id"]) != fold],
                                           retriever.articles, "tune")
            t0 = time.perf_counter()
            fine_tune_queries(base, examples, vectors[rows], path, TuneConfig())
            print(f"fold {fold}: encoder trained on {len(examples)} questions in "
                  f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
        if not (path / PRIOR_FILE).exists():
            # the article prior as the tune stage writes it, counted over the questions this
            # encoder learned only, so the product's search through it is out of fold too
            counts = gold_counts([q for q in tune if fold_of(q["id"]) != fold],
                                 retriever.articles)
            rows = [[law, number, suffix, n]
                    for (law, number, suffix), n in sorted(counts.items())]
            (path / PRIOR_FILE).write_text(json.dumps(
                {"questions": f"tune, fold != {fold}", "split": "tune", "counts": rows},
                ensure_ascii=False), encoding="utf-8")
        paths.append(path)
    return paths


def out_of_fold(retriever, questions: list[dict], keys, encoders: Path, depth: int
                ) -> list[tuple]:
    """(features, gold mask) of every tune question, its pool retrieved by a query encoder
    trained on the other fold only."""
    from dataclasses import replace

    from legalrag.index.tune import split_of
    from legalrag.retrieval.fusion import Fusion
    from legalrag.retrieval.rerank import features
    from legalrag.retrieval.retriever import Retriever

    tune = [q for q in questions if split_of(q["id"]) == "tune"]
    out = []
    for fold, path in enumerate(fold_encoders(retriever, questions, encoders)):
        other = Retriever(retriever.build_dir, replace(retriever.settings,
                                                       query_encoder=str(path)),
                          verify=False, fusion=Fusion())
        for q in tune:
            if fold_of(q["id"]) != fold:
                continue
            vec = other.embedder.encode([q["query"]])
            rankings, raw = other.candidates(q["query"], depth, vec=vec)
            pool = other.pool(q["query"], rankings, raw, vec)
            gold = gold_keys(other, q["relevant"])
            out.append((features(pool, other.meta, q["query"]),
                        np.array([keys[d] in gold for d in pool.ids])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", default=str(ROOT / "data" / "eval" / "stard_train.jsonl"))
    ap.add_argument("--write", action="store_true", help="write src/legalrag/data/fusion.json")
    ap.add_argument("--query-encoder", help="embed questions with this model folder instead "
                    "of the index's own query encoder (to try one before rebuilding)")
    ap.add_argument("--encoders", help="keep the two fold encoders in this folder and reuse "
                    "them next time (default: a temporary folder)")
    ap.add_argument("--depth", type=int, default=300, help="candidates each retriever gives "
                    "the reranker (written to fusion.json as rerank.depth)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from legalrag.config import Settings
    from legalrag.index.tune import split_of
    from legalrag.retrieval.fusion import Fusion
    from legalrag.retrieval.rerank import features, train
    from legalrag.retrieval.retriever import Retriever

    retriever = Retriever.open(Settings.load(query_encoder=args.query_encoder), fusion=Fusion())
    keys = [(a.law, a.number, a.suffix) for a in retriever.articles]
    cited = json.loads((retriever.build_dir / "laws.json").read_text(encoding="utf-8"))
    rows = {"tune": [], "dev": []}
    t0 = time.perf_counter()
    for line in Path(args.queries).read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        vec = retriever.embedder.encode([q["query"]])
        rankings, raw = retriever.candidates(q["query"], args.depth, vec=vec)
        pool = retriever.pool(q["query"], rankings, raw, vec)
        gold = gold_keys(retriever, q["relevant"])
        rows[split_of(q["id"])].append({
            "gold": gold, "n": len(q["relevant"]),
            "bm25": rankings.get("bm25", []), "dense": rankings.get("dense", []),
            "pool": pool, "x": features(pool, retriever.meta, q["query"]),
            "y": np.array([keys[d] in gold for d in pool.ids]),
        })
    print(f"candidates for {sum(map(len, rows.values()))} questions in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)

    def evaluate(split: str, fusion: Fusion, w_dense: float, reranker=None
                 ) -> tuple[float, float, float]:
        prior_of = [fusion.prior(a.level, cited.get(a.law, 0)) for a in retriever.articles]
        return score(rows[split], keys, prior_of, fusion.rrf_k, w_dense, reranker)

    plain = Fusion()
    grid = itertools.product([1.0, 1.4, 2.0, 3.0], [1.0, 0.5, 0.3], [1.0, 0.7], [0.0, 0.1, 0.2])
    best = None
    for w_dense, w_admin, w_interp, authority in grid:
        fusion = Fusion(60, {"bm25": 1.0, "dense": w_dense},
                        {"行政法规": w_admin, "部门规章": w_admin, "司法解释": w_interp}, authority)
        m = evaluate("tune", fusion, w_dense)
        if best is None or sum(m) > sum(best[1]):
            best = (fusion, m, w_dense)
    fusion, tune_m, w_dense = best
    t0 = time.perf_counter()
    in_sample = train([(r["x"], r["y"]) for r in rows["tune"]])
    questions = [json.loads(x) for x in Path(args.queries).read_text(encoding="utf-8").split("\n")
                 if x.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        encoders = Path(args.encoders) if args.encoders else Path(tmp)
        oof = out_of_fold(retriever, questions, keys, encoders, args.depth)
    out_only = train(oof)
    reranker = train([*((r["x"], r["y"]) for r in rows["tune"]), *oof])
    print(f"rerankers trained in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    lines = ["| setting | split | Recall@10 | Recall@100 | MRR@10 |", "|---|---|---|---|---|"]
    for name, f, w, rr in (("plain RRF", plain, 1.0, None),
                           ("tuned fusion + prior", fusion, w_dense, None),
                           ("+ reranker trained in sample", fusion, w_dense, in_sample),
                           ("+ reranker trained out of fold", fusion, w_dense, out_only),
                           ("+ reranker trained on both (default)", fusion, w_dense,
                            reranker)):
        for split in ("tune", "dev"):
            r10, r100, mrr = evaluate(split, f, w, rr)
            lines.append(f"| {name} | {split} ({len(rows[split])}) | {r10:.3f} | {r100:.3f} | "
                         f"{mrr:.3f} |")
    print("\n".join(lines))
    chosen = {"rrf_k": fusion.rrf_k, "weights": dict(fusion.weights),
              "level_weights": dict(fusion.level_weights), "authority": fusion.authority,
              "rerank": {"depth": args.depth, **reranker.to_dict()}}
    print(json.dumps({k: v for k, v in chosen.items() if k != "rerank"}, ensure_ascii=False))
    print("reranker weights:", ", ".join(f"{n} {w:+.2f}" for n, w in
                                         zip(chosen["rerank"]["features"],
                                             chosen["rerank"]["weights"], strict=True)))
    if args.write:
        chosen["source"] = (f"bench/tune_fusion.py on the STARD tune split, "
                            f"embedding {retriever.manifest['embedding']['name']}, "
                            f"{time.strftime('%Y-%m-%d')}")
        path = ROOT / "src" / "legalrag" / "data" / "fusion.json"
        path.write_text(json.dumps(chosen, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
