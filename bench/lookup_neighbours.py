"""What follows an article the question names: related articles or filler (issue 13).

    .venv/bin/python bench/lookup_neighbours.py [--split tune|dev] [--encoders DIR]
        [--weights 0.5 1 2] [--out FILE]

After an exact lookup the named article comes first, and the rest of the hits are the
question's ranking. A question such as 《民法典》第一千零八十条是怎么规定的？ says nothing
but the citation, so its ranking finds whatever matches 民法典 and 规定. The product ranks
the rest as like the named article (Retriever.named_query). This measures both ways on
STARD: for every question with two or more gold articles in force and every one of them,
the named-article question is asked in two forms,

- pure: 《法》第N条是怎么规定的？ (the named article and nothing else), and
- with the question: 《法》第N条 followed by the STARD question,

and the measure is the share of the question's *other* gold articles among hits 2–5 and
2–10. The gold articles of one question are articles a real question needed together, so
they are the related articles a reader of the named one would want next. Nothing is
trained or fitted: the weight of the named article's vector against the question's is
chosen on the tune part and dev is reported beside it.
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


def pairs(retriever, queries, split: str) -> list[tuple[str, str, int, set]]:
    """(form, question, named row, keys of the other golds) for every gold of every
    question with at least two gold articles in force."""
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import resolve_gold

    out = []
    for q in queries:
        if split != "all" and split_of(q.id) != split:
            continue
        golds = [g for g in (resolve_gold(c, retriever) for c in q.relevant) if g.key]
        rows = {g.key: retriever.shown_row(g.key) for g in golds}
        rows = {k: r for k, r in rows.items() if r is not None}
        if len(rows) < 2:
            continue
        for key, row in rows.items():
            cite = retriever.articles[row].citation
            others = set(rows) - {key}
            out.append(("pure", f"{cite}是怎么规定的？", row, others))
            out.append(("with the question", f"{cite}：{q.query}", row, others))
    return out


def run(retriever, items) -> dict:
    found: dict[str, list[float]] = {}
    for form, question, row, others in items:
        hits = retriever.search(question, k=10)
        if hits[0].article is not retriever.articles[row]:
            raise SystemExit(f"the lookup did not put the named article first: {question}")
        keys = [(h.article.law, h.article.number, h.article.suffix) for h in hits]
        for depth in (5, 10):
            got = len(others & set(keys[1:depth])) / len(others)
            found.setdefault(f"{form} 2-{depth}", []).append(got)
    return {k: round(sum(v) / len(v), 4) for k, v in found.items()} | {
        "named questions": len(items)}


def run_all(items, by_named: bool, weight: float) -> dict:
    """run over every (retriever, items) part, pooled by question count."""
    parts = []
    for retriever, part in items:
        retriever.rank_by_named, retriever.named_weight = by_named, weight
        parts.append(run(retriever, part))
    total = sum(p["named questions"] for p in parts)
    return {k: round(sum(p[k] * p["named questions"] for p in parts) / total, 4)
            for k in parts[0] if k != "named questions"} | {"named questions": total}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--split", default="tune", choices=("tune", "dev", "all"))
    ap.add_argument("--weights", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--encoders", type=Path,
                    help="the fold encoders of bench/tune_fusion.py: the tune part out of fold")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from legalrag.config import Settings
    from legalrag.retrieval.evaluate import load_queries
    from legalrag.retrieval.retriever import Retriever

    settings = Settings.load()
    product = Retriever.open(settings)
    queries = load_queries(args.queries)
    # (retriever, questions) pairs: the product for dev; for the tune part, the query
    # encoder it learned would flatter the question's own ranking, so with --encoders each
    # half is searched by the fold encoder that never saw it.
    parts = [(product, queries)]
    if args.encoders and args.split == "tune":
        from tune_fusion import fold_of

        parts = [(Retriever(product.build_dir, replace(
            settings, query_encoder=str(args.encoders / f"fold{fold}")), verify=False),
            [q for q in queries if fold_of(q.id) == fold]) for fold in (0, 1)]
    items = [(r, pairs(r, qs, args.split)) for r, qs in parts]
    results = {"the question alone (before)": run_all(items, False, 0.0)}
    print(results, flush=True)
    for w in args.weights:
        results[f"like the named article, weight {w}"] = run_all(items, True, w)
        print(w, results[f"like the named article, weight {w}"], flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"split": args.split, "results": results},
                                       ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
