"""The labels today's citation check gives answers that were saved with another one.

    .venv/bin/python bench/relabel.py ANSWERS_JSON [ANSWERS_JSON ...] [--list]

Reads `legalrag eval-answers` answers.json files, checks each answer's raw text again
against its own sources with the product's check and the shipped support scorer
(`check.check_answer`, `SupportScorer.default`), and counts the labels before (as saved)
and after, the headline of eval-answers (a gold article cited with ✓ by the model, or
quoted as the provision) and the ✓ shown with 另有例外 (its `provisos`), as saved and as
today's check gives them. With --list it prints
every citation whose label changed, with its sentence, so that each change can be read.
No chat model is loaded; the embedding model is (the scorer's cosine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    from calibrate_support import article_from, corpus_facts, default_embed

    from legalrag.answer.check import check_answer, sentence_at
    from legalrag.answer.support import SupportScorer
    from legalrag.citations import find_citations
    from legalrag.vocab import VERIFIED

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("answers", nargs="+", type=Path)
    ap.add_argument("--list", action="store_true", help="print every changed citation")
    args = ap.parse_args()
    facts = corpus_facts()
    by_id = {a.id: a for versions in facts.articles.values() for a in versions}
    scorer = SupportScorer.default(default_embed())
    for path in args.answers:
        before: Counter[str] = Counter()
        after: Counter[str] = Counter()
        moves: Counter[tuple[str, str]] = Counter()
        rows = json.loads(path.read_text(encoding="utf-8"))["questions"]
        headline = {"as saved": 0, "now": 0}
        provisos = {"as saved": 0, "now": 0}  # ✓ citations shown with 另有例外
        for row in rows:
            ans = row["answer"]
            headline["as saved"] += row["gold_cited_verified"] or row["gold_quoted"]
            if ans["abstained"]:
                continue
            golds = {(facts.names.resolve(r.law), r.number, r.suffix)
                     for g in row["golds"] for r in find_citations(g)}
            gold_verified = False
            hits = {h["id"]: h for h in ans["hits"]}
            sources = [article_from(hits[s["id"]]) if s["id"] in hits else by_id[s["id"]]
                       for s in ans["sources"]]
            saved = {(c["start"], c["end"], c["kind"]): c["label"] for c in ans["citations"]}
            raw = ans["raw_text"]
            provisos["as saved"] += row.get("provisos", 0)
            for c in check_answer(raw, sources, facts, scorer.supports):
                provisos["now"] += c.label == VERIFIED and bool(c.proviso)
                if c.label == VERIFIED:
                    # the article cited, as eval-answers keys it (answer.evaluate)
                    if c.kind == "article" and c.number > 0:
                        key = (c.law, c.number, c.suffix)
                    elif c.kind == "marker" and c.source and 1 <= c.source <= len(sources):
                        a = sources[c.source - 1]
                        key = (a.law, a.number, a.suffix)
                    else:
                        key = None
                    gold_verified |= key in golds
                old = saved.get((c.start, c.end, c.kind), "(new)")
                before[old] += 1
                after[c.label] += 1
                if old != c.label:
                    moves[(old, c.label)] += 1
                    if args.list:
                        print(f"{row['id']}\t{old} -> {c.label}\t{c.raw}\t"
                              f"{sentence_at(raw, c.start, c.end)}")
            headline["now"] += gold_verified or row["gold_quoted"]
        print(f"{path}: gold cited with ✓ or quoted: as saved "
              f"{headline['as saved'] / len(rows):.1%}, now {headline['now'] / len(rows):.1%}")
        print(f"{path}: ✓ shown with 另有例外: as saved {provisos['as saved']}, "
              f"now {provisos['now']}")
        print(f"{path}: labels as saved {dict(before.most_common())}; "
              f"now {dict(after.most_common())}; changed "
              f"{', '.join(f'{a} -> {b}: {n}' for (a, b), n in moves.most_common()) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
