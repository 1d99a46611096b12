"""Answers that quote a provision the model was not given.

    .venv/bin/python bench/unread_quotes.py ANSWERS_JSON [ANSWERS_JSON ...]

Reads `legalrag eval-answers` answers.json files and counts, per file, the answers whose
quoted provisions (the 依据/另见 lines) include an article that is not among the sources
the model read. The sources panel marks such an article 未提供给模型 beside the quote, so
the product keeps this at zero (`fit_passages(keep=…)`); see docs/evaluation.md, "The
quoted article is source [1]".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def unread(answer: dict) -> list[str]:
    """The citations of the answer's quotes whose article the model did not read."""
    read = {s["id"] for s in answer.get("sources", ())}
    return [p["citation"] for p in answer.get("provisions") or () if p["id"] not in read]


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    for path in paths:
        questions = json.loads(Path(path).read_text(encoding="utf-8"))["questions"]
        missing = [(q["id"], unread(q["answer"])) for q in questions]
        missing = [(qid, cites) for qid, cites in missing if cites]
        quoting = sum(1 for q in questions if q["answer"].get("provisions"))
        print(f"{path}: {len(missing)} of {len(questions)} answers ({quoting} with a quote) "
              "quote a provision the model was not given")
        for qid, cites in missing:
            print(f"  {qid}: {'、'.join(cites)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
