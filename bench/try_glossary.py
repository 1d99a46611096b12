"""The glossary of everyday words (retrieval/glossary.py), on and off: tune out of fold, dev.

    LEGALRAG_INDEX_DIR=... .venv/bin/python bench/try_glossary.py --encoders DIR [--out FILE]
    .venv/bin/python bench/try_glossary.py --encoders DIR --quick --ranks FILE   # 1 min

--quick measures the tune part out of fold with the glossary on only (about a minute),
for checking an entry before the whole run; --ranks writes every tune question's gold
ranks of the glossary-on run as JSON lines, so two glossaries can be compared question by
question.

The glossary was written from the statutes' wording, not from STARD's questions, so nothing
in it was fitted on either part. Two measures:

- tune, out of fold: every tune question through the query encoder of the other half of
  the tune part and that half's article prior (bench/tune_fusion.py's fold encoders, kept
  in DIR), the product's search otherwise, without the cross-encoder (it learned all 1,000
  tune questions);
- dev: the product's whole search as it ships (cross-encoder included).

Each is run with the glossary off and on; a question the glossary adds nothing to ranks the
same both ways, so the table also gives how many questions it touched and what they gained.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

DEPTH = 100


def ranks(retriever, queries: list, golds: dict) -> dict[str, list]:
    """Each question's gold keys' ranks (None below DEPTH)."""
    out = {}
    for q in queries:
        keys = [(h.article.law, h.article.number, h.article.suffix)
                for h in retriever.search(q.query, k=DEPTH, mode="hybrid")]
        out[q.id] = [keys.index(g) + 1 if g in keys else None for g in golds[q.id]]
    return out


def measure(by_query: dict[str, list]) -> dict[str, float]:
    rows = [r for r in by_query.values() if r]
    n = len(rows)

    def recall(k: int) -> float:
        return sum(sum(x is not None and x <= k for x in r) / len(r) for r in rows) / n

    def mrr(r: list) -> float:
        best = min((x for x in r if x is not None), default=None)
        return 1 / best if best is not None and best <= 10 else 0.0

    return {"n": n, "hit@5": sum(any(x is not None and x <= 5 for x in r) for r in rows) / n,
            "R@5": recall(5), "R@10": recall(10), "R@100": recall(100),
            "MRR@10": sum(mrr(r) for r in rows) / n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--encoders", type=Path, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--quick", action="store_true",
                    help="only the tune part out of fold, glossary on")
    ap.add_argument("--ranks", type=Path, help="write the tune questions' gold ranks, "
                    "glossary on, here (JSON lines)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tune_fusion import fold_encoders, fold_of

    from legalrag.config import Settings
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import load_queries, resolve_gold
    from legalrag.retrieval.glossary import Glossary
    from legalrag.retrieval.retriever import Retriever

    settings = Settings.load()
    product = Retriever.open(replace(settings, query_glossary=False))
    queries = load_queries(args.queries)
    golds = {q.id: [(g.law, g.number, g.suffix)
                    for g in (resolve_gold(c, product) for c in q.relevant) if g.resolved]
             for q in queries}
    raw = [{"id": q.id, "query": q.query, "relevant": q.relevant} for q in queries]
    paths = fold_encoders(product, raw, args.encoders)
    glossary = Glossary.load()
    touched = {q.id for q in queries if glossary.terms(q.query)}
    report: dict = {"touched": {}}
    for on in (True,) if args.quick else (False, True):
        s = replace(settings, query_glossary=on)
        folds = [Retriever(product.build_dir, replace(s, query_encoder=str(p), cross_encoder=""),
                           verify=False, fusion=product.fusion) for p in paths]
        tune = {}
        for fold in (0, 1):
            part = [q for q in queries if split_of(q.id) == "tune" and fold_of(q.id) == fold]
            tune |= ranks(folds[fold], part, golds)
        dev = {} if args.quick else ranks(
            Retriever(product.build_dir, s, verify=False, fusion=product.fusion),
            [q for q in queries if split_of(q.id) == "dev"], golds)
        if on and args.ranks:
            args.ranks.write_text("".join(
                json.dumps({"id": q.id, "query": q.query, "ranks": tune[q.id]},
                           ensure_ascii=False) + "\n" for q in queries if q.id in tune),
                encoding="utf-8")
        name = "on" if on else "off"
        for part, by_query in (("tune out of fold", tune), ("dev", dev)):
            if not by_query:
                continue
            report[f"{part}, glossary {name}"] = measure(by_query)
            report["touched"][f"{part}, glossary {name}"] = measure(
                {i: r for i, r in by_query.items() if i in touched})
    report["touched questions"] = {
        "tune": sum(split_of(i) == "tune" for i in touched),
        "dev": sum(split_of(i) == "dev" for i in touched)}
    print(json.dumps(report, ensure_ascii=False, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
