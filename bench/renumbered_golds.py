"""Gold articles cited by an earlier numbering: the in-force article at that number now says
something else.

    .venv/bin/python bench/renumbered_golds.py [--out bench/results/renumbered_golds.json]

STARD's citations were written against the laws of their day. A law amended since then may
have renumbered its articles: 民事诉讼法 2021 第二百六十条 (迟延履行期间的债务利息) is
第二百六十四条 of the 2023 text, and the 2023 第二百六十条 is about handing over property.
The evaluation counts a hit by law and number in any version (data/eval's README), and the
product shows articles in force, so for such a gold the article the question needs (the
successor) does not count and the one that counts is off topic.

For each gold citation the script compares the in-force text at that number with the
newest earlier version at the same number. Under `--similar` (difflib ratio, 0.5) they are
different articles; the successor is then the in-force article of the same law most like
the earlier text. Reported per part: how many golds changed, for how many a successor was
found (ratio >= 0.8), and the examples.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--similar", type=float, default=0.5,
                    help="below this ratio the two texts are different articles")
    ap.add_argument("--out", type=Path, help="write the counts and examples here (JSON)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from legalrag.config import Settings
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import load_queries, resolve_gold
    from legalrag.retrieval.retriever import Retriever

    retriever = Retriever.open(Settings.load(), verify=False)
    in_force = defaultdict(list)
    for a in retriever.articles:
        if a.in_force:
            in_force[a.law].append(a)
    counts: Counter = Counter()
    laws: Counter = Counter()
    examples = []
    for q in load_queries(args.queries):
        part = split_of(q.id)
        for citation in q.relevant:
            gold = resolve_gold(citation, retriever)
            if not gold.resolved:
                continue
            counts[f"{part} golds"] += 1
            versions = retriever.lookup(gold.law, gold.number, gold.suffix)
            now = [a for a in versions if a.in_force]
            before = [a for a in versions if not a.in_force]
            if not now or not before:
                continue
            if similarity(now[0].text, before[0].text) >= args.similar:
                continue
            counts[f"{part} renumbered"] += 1
            laws[gold.law] += 1
            successor = max(in_force[gold.law],
                            key=lambda a: similarity(a.text[:200], before[0].text[:200]))
            match = similarity(successor.text, before[0].text)
            counts[f"{part} with a successor"] += match >= 0.8
            examples.append({"id": q.id, "part": part, "gold": citation,
                             "cited_version": before[0].version,
                             "cited_text": before[0].text[:40],
                             "in_force_text": now[0].text[:40],
                             "successor": successor.citation if match >= 0.8 else None,
                             "successor_ratio": round(match, 2)})
    out = {"counts": dict(sorted(counts.items())), "laws": dict(laws.most_common()),
           "examples": examples}
    print(json.dumps({k: out[k] for k in ("counts", "laws")}, ensure_ascii=False, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
