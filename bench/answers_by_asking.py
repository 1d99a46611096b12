"""Two eval-answers runs on the same questions, set side by side for the questions that
ask for the articles they name and nothing else (check.cites_only) and for the rest.

    python bench/answers_by_asking.py bench/results/answers/named-before \
        bench/results/answers/named-after

Per group and run: answered questions, first model token and complete answer (median and
maximum, seconds), loops stopped, sentences marked 未引条文, questions whose gold article
the model cited with ✓, and the citation labels. The groups are read from each question
as the current code reads it.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def summary(rows: list[dict]) -> dict:
    answered = [r for r in rows if r["abstained"] == "False"]
    first = [float(r["first_token_ms"]) / 1000 for r in answered]
    total = [float(r["total_ms"]) / 1000 for r in answered]
    labels: dict[str, int] = {}
    for r in rows:
        for k, v in json.loads(r["labels"]).items():
            labels[k] = labels.get(k, 0) + v
    return {"answered": len(answered),
            "first_token_s": [round(statistics.median(first), 1), round(max(first), 1)],
            "complete_s": [round(statistics.median(total), 1), round(max(total), 1)],
            "loops": sum(r["loop"] == "True" for r in rows),
            "uncited": sum(int(r["uncited"]) for r in rows),
            "gold_cited_verified": sum(r["gold_cited_verified"] == "True" for r in rows),
            "labels": labels}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=Path, nargs="+", help="eval-answers --out folders")
    args = ap.parse_args()
    from legalrag.answer.check import cites_only

    for run in args.runs:
        rows = list(csv.DictReader((run / "per_question.csv").open(encoding="utf-8")))
        for name, keep in (("asks for the article only", True), ("has words of its own", False)):
            group = [r for r in rows if cites_only(r["query"]) is keep]
            print(f"{run.name:14} {name} ({len(group)}): "
                  f"{json.dumps(summary(group), ensure_ascii=False)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
