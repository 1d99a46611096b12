"""The timing and gold rows of an eval-answers run, over its first N questions only: to set
a whole-dev run beside a shorter one (`-n N`) on the same questions.

    python bench/answers_head.py bench/results/answers/dev/answers.json -n 60

Medians and p95 are taken as `legalrag eval-answers` takes them (its `_p95`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from legalrag.answer.evaluate import _p95  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("answers", type=Path)
    ap.add_argument("-n", type=int, required=True)
    args = ap.parse_args()
    rows = json.loads(args.answers.read_text(encoding="utf-8"))["questions"][: args.n]
    answered = [r for r in rows if not r["abstained"]]
    firsts = sorted(r["first_token_ms"] for r in answered if r["first_token_ms"] is not None)
    totals = sorted(r["total_ms"] for r in answered)
    quotes = sorted(r["provision_ms"] for r in answered if r.get("provision_ms") is not None)
    n = len(rows)
    print(f"first {n} questions of {args.answers} ({rows[0]['id']} … {rows[-1]['id']})")
    reached = sum(r["gold_cited_verified"] or r["gold_quoted"] for r in rows)
    print(f"gold cited with ✓ or quoted: {reached / n:.1%}")
    print(f"quoted provision on screen, median: {statistics.median(quotes) / 1000:.2f} s")
    print(f"first model token, median / p95: {statistics.median(firsts) / 1000:.1f} s / "
          f"{_p95(firsts) / 1000:.1f} s")
    print(f"answer complete, median / p95: {statistics.median(totals) / 1000:.1f} s / "
          f"{_p95(totals) / 1000:.1f} s")


if __name__ == "__main__":
    main()
