"""Each retrieval lever's effect on STARD, split into the tune and dev parts.

    .venv/bin/python bench/eval_levers.py [--queries data/eval/stard_train.jsonl]

Runs `legalrag.retrieval.evaluate.run_eval` over the live index with the levers switched on one by
one: the base query encoder with plain RRF, + the document prior and tuned fusion weights,
the tuned query encoder with plain RRF, both, and both + the reranker (the default). Dev
questions were used for none of the choices (see legalrag.index.tune.split_of), so the dev
column estimates held-out performance.
Prints a Markdown table (docs/evaluation.md carries it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", default=str(ROOT / "data" / "eval" / "stard_train.jsonl"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "levers.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from legalrag.config import Settings
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import load_queries, run_eval
    from legalrag.retrieval.fusion import Fusion
    from legalrag.retrieval.retriever import Retriever

    queries = load_queries(Path(args.queries))
    splits = {"tune": [q for q in queries if split_of(q.id) == "tune"],
              "dev": [q for q in queries if split_of(q.id) == "dev"]}
    base = Settings.load()
    plain, tuned = Fusion(), Fusion.default()
    no_rerank = replace(tuned, reranker=None)
    configs = [
        ("base encoder, plain RRF", replace(base, query_encoder="base"), plain),
        ("base encoder, tuned fusion + prior", replace(base, query_encoder="base"), no_rerank),
        ("tuned encoder, plain RRF", base, plain),
        ("tuned encoder, tuned fusion + prior", base, no_rerank),
        ("tuned encoder, tuned fusion + prior + reranker (default)", base, tuned),
    ]
    rows, results = [], {}
    for name, settings, fusion in configs:
        retriever = Retriever.open(settings, fusion=fusion)
        for split, qs in splits.items():
            t0 = time.perf_counter()
            modes = ("bm25", "dense", "hybrid")
            report = run_eval(retriever, qs, modes=modes, ks=(10, 100))
            agg = report.aggregate
            results[f"{name} | {split}"] = agg
            for mode in modes:
                a = agg[mode]
                rows.append(f"| {name} | {split} ({len(qs)}) | {mode} | {a['recall@10']:.3f} | "
                            f"{a['recall@100']:.3f} | {a['mrr@10']:.3f} |")
            print(f"{name} / {split}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    table = ["| setting | questions | mode | Recall@10 | Recall@100 | MRR@10 |",
             "|---|---|---|---|---|---|", *rows]
    print("\n".join(table))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
