"""Choose how cross-references join the ranking, on the STARD tune part; report dev beside.

    LEGALRAG_INDEX_DIR=... .venv/bin/python bench/tune_crossref.py [--cache FILE]

Runs the product's hybrid search (k = 100, cross-references off) once per question, then
replays legalrag.retrieval.crossref.follow over the rankings for every setting in a
small grid: how many of the best candidates have their references followed (top), how far
below the citing article the cited one is placed (gap), and how many references of one
article are followed (per). The objective is Recall@5 + Recall@10 + Recall@100 + MRR@10
on the tune part (the same metrics as legalrag eval: a hit is the same law and article
number, any version; Recall over all golds of a question); dev questions
(legalrag.index.tune.split_of) are never used to choose, only reported. --cache keeps the
rankings so a second run is instant.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def metrics(rows, keys, order_of) -> dict[str, float]:
    out = {"recall@5": 0.0, "recall@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0, "hit@1": 0.0}
    for row in rows:
        got = [keys[d] for d in order_of(row)[:100]]
        gold, n = row["gold"], row["n"]
        for k in (5, 10, 100):
            out[f"recall@{k}"] += len(gold & set(got[:k])) / n
        out["mrr@10"] += next((1 / (i + 1) for i, g in enumerate(got[:10]) if g in gold), 0.0)
        out["hit@1"] += float(bool(got) and got[0] in gold)
    return {k: v / max(1, len(rows)) for k, v in out.items()}


def latency(queries: Path, n: int) -> None:
    import statistics
    from dataclasses import replace

    from legalrag.config import Settings
    from legalrag.index.tune import split_of
    from legalrag.retrieval.retriever import Retriever

    qs = [q["query"] for q in map(json.loads, queries.read_text(encoding="utf-8").splitlines())
          if split_of(q["id"]) == "dev"][:n]
    base = Settings.load()
    t0 = time.perf_counter()
    fresh = Retriever.open(replace(base, cross_references=True))
    fresh.embedder.encode(["预热"])  # the model load is the same either way
    t1 = time.perf_counter()
    fresh.search(qs[0], k=10)
    t2 = time.perf_counter()
    fresh.search(qs[0], k=10)
    t3 = time.perf_counter()
    print(f"open {t1 - t0:.1f} s; first question with the map built on it {t2 - t1:.2f} s, "
          f"the same again {t3 - t2:.2f} s")
    off = Retriever.open(replace(base, cross_references=False))
    on = Retriever.open(replace(base, cross_references=True))
    t0 = time.perf_counter()
    on.warm_up()
    off.warm_up()
    print(f"warm_up of both (model loads + the map) {time.perf_counter() - t0:.1f} s")
    times: dict[str, list[float]] = {"off": [], "on": []}
    for i, q in enumerate(qs):
        pair = (("off", off), ("on", on)) if i % 2 else (("on", on), ("off", off))
        for name, r in pair:
            t0 = time.perf_counter()
            r.search(q, k=10)
            times[name].append(1000 * (time.perf_counter() - t0))
    for name, ts in times.items():
        ts.sort()
        print(f"{name}: p50 {statistics.median(ts):.0f} ms, p90 {ts[int(0.9 * len(ts))]:.0f} ms "
              f"over {len(ts)} dev questions")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", default=str(ROOT / "data" / "eval" / "stard_train.jsonl"))
    ap.add_argument("--cache", help="keep the rankings in this file and reuse them")
    ap.add_argument("--latency", type=int, metavar="N",
                    help="instead: time search() on the first N dev questions with the "
                    "setting off and on (alternating, one process), and the first question "
                    "of a fresh retriever with it on")
    args = ap.parse_args()
    if args.latency:
        latency(Path(args.queries), args.latency)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from dataclasses import replace

    from legalrag.config import Settings
    from legalrag.index.tune import split_of
    from legalrag.retrieval.crossref import follow
    from legalrag.retrieval.retriever import Retriever

    sys.path.insert(0, str(ROOT / "bench"))
    from tune_fusion import gold_keys

    settings = Settings.load()
    retriever = Retriever.open(replace(settings, cross_references=False))
    keys = [(a.law, a.number, a.suffix) for a in retriever.articles]
    row_by_id = {a.id: i for i, a in enumerate(retriever.articles)}
    questions = [json.loads(x) for x in Path(args.queries).read_text(encoding="utf-8")
                 .splitlines() if x.strip()]
    cache = Path(args.cache) if args.cache else None
    if cache and cache.exists():
        rows = pickle.loads(cache.read_bytes())
    else:
        rows = {"tune": [], "dev": []}
        t0 = time.perf_counter()
        for q in questions:
            hits = retriever.search(q["query"], k=100)
            rows[split_of(q["id"])].append({
                "id": q["id"], "gold": gold_keys(retriever, q["relevant"]),
                "n": len(q["relevant"]), "order": [row_by_id[h.article.id] for h in hits]})
        print(f"rankings of {len(questions)} questions in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
        if cache:
            cache.write_bytes(pickle.dumps(rows))
    t0 = time.perf_counter()
    refs = retriever.cross_refs
    print(f"cross-reference map in {time.perf_counter() - t0:.1f} s: "
          f"{len(refs.forward)} citing articles, {len(refs.reverse)} cited", file=sys.stderr)
    row_of = retriever.shown_row

    # A question that names an article gets it first and then what it cites and what
    # cites it (crossref.related), not follow(): those are left as they are here.
    query_of = {q["id"]: q["query"] for q in questions}
    named = {r["id"] for part in rows.values() for r in part
             if any(lk.articles for lk in retriever.lookup_query(query_of[r["id"]]))}
    print(f"{len(named)} questions name an article (left as they are)", file=sys.stderr)

    def run(split, top, gap, per):
        if top == 0:
            return metrics(rows[split], keys, lambda r: r["order"])
        return metrics(rows[split], keys, lambda r: r["order"] if r["id"] in named else
                       follow(r["order"], refs, row_of, top=top, gap=gap, per=per)[0])

    objective = ("recall@5", "recall@10", "recall@100", "mrr@10")
    grid = [(0, 0, 0), *itertools.product([1, 2, 3, 5, 10], [1, 2, 3, 5, 9], [1, 2, 3])]
    scored = [(sum(run("tune", *g)[m] for m in objective), g) for g in grid]
    scored.sort(key=lambda x: -x[0])
    shown = [(0, 0, 0), *[g for _, g in scored[:8] if g != (0, 0, 0)]]
    lines = ["| top, gap, per | split | Recall@5 | Recall@10 | Recall@100 | MRR@10 | Hit@1 |",
             "|---|---|---|---|---|---|---|"]
    for g in shown:
        for split in ("tune", "dev"):
            m = run(split, *g)
            name = "off" if g == (0, 0, 0) else ", ".join(map(str, g))
            lines.append(f"| {name} | {split} ({len(rows[split])}) | {m['recall@5']:.3f} | "
                         f"{m['recall@10']:.3f} | {m['recall@100']:.3f} | {m['mrr@10']:.3f} | "
                         f"{m['hit@1']:.3f} |")
    print("\n".join(lines))
    print("best on tune (top, gap, per):", scored[0][1])


if __name__ == "__main__":
    main()
