"""Gold articles found, law by law, in the hits the cross-encoder stage reorders (issue 13).

    .venv/bin/python bench/recall_by_law.py CACHE [--laws 14] [--depth 5 30] [--out FILE]

CACHE is the pickle `bench/train_cross_oof.py --cache` keeps: every question of the query
file with the product's hits before the stage, tune questions retrieved out of fold (by the
fold encoder that never saw them), dev questions by the product as it ships. Each gold
article counts once, under its law, as found or not in the top k, so a law's row is a
recall over its gold articles, not an average over questions. The laws with the most gold
articles in the tune part are listed; the dev part shows the same laws where it has them.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from collections import Counter
from pathlib import Path


def found_by_law(rows: list[dict], depths: list[int]) -> dict[str, dict[str, int]]:
    """{law: {"golds": n, "@k": found in the top k, ...}} over the rows' gold articles."""
    table: dict[str, Counter] = {}
    for row in rows:
        keys = [key for key, _ in row["hits"]]
        for gold in row["gold"]:
            counts = table.setdefault(gold[0], Counter())
            counts["golds"] += 1
            for k in depths:
                counts[f"@{k}"] += gold in keys[:k]
    return {law: dict(c) for law, c in table.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cache", type=Path, help="the pickle of bench/train_cross_oof.py --cache")
    ap.add_argument("--laws", type=int, default=14, help="how many laws to list")
    ap.add_argument("--depth", type=int, nargs="+", default=[5, 30])
    ap.add_argument("--out", type=Path, help="write the table here (JSON)")
    args = ap.parse_args()

    rows = pickle.loads(args.cache.read_bytes())
    deepest = min(len(r["hits"]) for r in rows)
    if max(args.depth) > deepest:
        sys.exit(f"the cache keeps {deepest} hits a question; ask for --depth up to {deepest}")
    parts = {part: found_by_law([r for r in rows if r["part"] == part], args.depth)
             for part in ("tune", "dev")}
    laws = sorted(parts["tune"], key=lambda law: -parts["tune"][law]["golds"])[:args.laws]
    cols = " / ".join(f"R@{k}" for k in args.depth)
    print(f"| law | tune golds | tune (out of fold) {cols} | dev golds | dev {cols} |")
    print("|---|---|---|---|---|")
    for law in laws:
        cells = []
        for part in ("tune", "dev"):
            c = parts[part].get(law)
            if not c:
                cells += ["0", "–"]
                continue
            cells += [str(c["golds"]),
                      " / ".join(f"{c[f'@{k}'] / c['golds']:.2f}" for k in args.depth)]
        print(f"| {law} | " + " | ".join(cells) + " |")
    if args.out:
        args.out.write_text(json.dumps({"depths": args.depth, "laws": laws, **parts},
                                       ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
