"""Does searching a question clause by clause find gold articles the whole question misses?

    .venv/bin/python bench/try_subqueries.py --encoders /tmp/enc3 \
        [--out bench/results/subqueries.json]

A question that describes a case often raises more than one legal point (公司拖欠工资三个月，
我可以辞职并要求经济补偿吗), and its gold articles answer different clauses. The query
encoder embeds the whole question into one vector. This script splits each question at
，。？！； (clauses of at least 4 characters; a question with fewer than two such clauses
is searched whole) and embeds every clause with the same encoder. Each article then gets:

- whole: the product's dense cosine with the whole question;
- max: the best cosine over the whole question and its clauses;
- clauses: the best cosine over the clauses alone;
- mix: whole + 0.5 * the best clause cosine.

Reported for each: the dense recall of the gold articles at 10, 100 and 300 (300 is the
depth each list gives the reranker's pool), and the share of gold articles in the pool
it would make with BM25's best 300. Out of fold: a tune question is embedded by the fold
encoder that never saw it (bench/tune_fusion.py's --encoders); dev questions by the
index's own encoder. Only in-force articles are ranked, as the product ranks them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

CLAUSE_RE = re.compile(r"[，。？！；,?!;]")
VARIANTS = ("whole", "max", "clauses", "mix")


def clauses(question: str) -> list[str]:
    """The question's clauses of 4 characters or more; [] when there are fewer than two."""
    parts = [p for p in CLAUSE_RE.split(question) if len(p) >= 4]
    return parts if len(parts) >= 2 else []


def gold_ranks(cos: np.ndarray, in_force: np.ndarray, gold: list[int]) -> list[int]:
    """The 1-based rank of each gold row among the in-force articles by cos."""
    order = np.argsort(-np.where(in_force, cos, -np.inf), kind="stable")
    rank = np.empty(len(cos), dtype=np.int64)
    rank[order] = np.arange(1, len(cos) + 1)
    return [int(rank[g]) for g in gold]


def question_row(retriever, vectors: np.ndarray, keys: list, q: dict) -> dict:
    from tune_fusion import gold_keys

    wanted = gold_keys(retriever, q["relevant"])
    inf = retriever.in_force
    gold = [i for i, k in enumerate(keys) if k in wanted and inf[i]]
    parts = clauses(q["query"])
    cos = vectors @ retriever.embedder.encode([q["query"], *parts]).T
    scores = {"whole": cos[:, 0]}
    if parts:
        best = cos[:, 1:].max(1)
        scores.update(max=np.maximum(cos[:, 0], best), clauses=best, mix=cos[:, 0] + 0.5 * best)
    bm25 = retriever.candidates(q["query"], 300, mode="bm25")[0].get("bm25", [])
    row = {"n": len(q["relevant"]), "n_clauses": len(parts),
           "bm25_pool": [g in set(bm25) for g in gold]}
    for name in VARIANTS:
        row[name] = gold_ranks(scores.get(name, scores["whole"]), inf, gold)
    return row


def summary(rows: list[dict]) -> dict:
    out: dict = {"questions": len(rows)}
    for name in VARIANTS:
        m = {f"R@{k}": float(np.mean([sum(r <= k for r in row[name]) / row["n"]
                                      for row in rows])) for k in (10, 100, 300)}
        m["pool with BM25"] = float(np.mean(
            [sum(r <= 300 or b for r, b in zip(row[name], row["bm25_pool"], strict=True))
             / row["n"] for row in rows]))
        out[name] = {k: round(v, 4) for k, v in m.items()}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--encoders", type=Path, required=True,
                    help="the fold encoders of bench/tune_fusion.py (trained there if missing)")
    ap.add_argument("--out", type=Path, help="write the table here (JSON)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tune_fusion import fold_encoders, fold_of

    from legalrag.config import Settings
    from legalrag.index.tune import split_of
    from legalrag.retrieval.fusion import Fusion
    from legalrag.retrieval.retriever import Retriever

    questions = [json.loads(x) for x in args.queries.read_text(encoding="utf-8").splitlines()
                 if x.strip()]
    product = Retriever.open(replace(Settings.load(), cross_encoder=""), fusion=Fusion())
    keys = [(a.law, a.number, a.suffix) for a in product.articles]
    folds = [Retriever(product.build_dir, replace(product.settings, query_encoder=str(p)),
                       verify=False, fusion=Fusion())
             for p in fold_encoders(product, questions, args.encoders)]
    vectors = product.dense.reconstruct_n(0, product.dense.ntotal)
    t0 = time.perf_counter()
    tune = [question_row(folds[fold_of(q["id"])], vectors, keys, q) for q in questions
            if split_of(q["id"]) == "tune"]
    dev = [question_row(product, vectors, keys, q) for q in questions
           if split_of(q["id"]) == "dev"]
    table = {}
    for name, rows in (("tune out of fold", tune), ("dev", dev)):
        table[name] = {"all": summary(rows),
                       "two clauses or more": summary([r for r in rows if r["n_clauses"]])}
    table["seconds"] = round(time.perf_counter() - t0)
    print(json.dumps(table, ensure_ascii=False, indent=1))
    if args.out:
        args.out.write_text(json.dumps(table, ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
