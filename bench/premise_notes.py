"""How often a question gets a note on what it cites (check.premise_notes) and how often it
is taken to ask for its citations and nothing else (check.cites_only), on question files.

    .venv/bin/python bench/premise_notes.py [FILE.jsonl ...] [--out FILE]

Default files: the STARD training questions and data/eval/citation_queries.jsonl. Every
note on these is a false alarm unless the question really cites what the corpus lacks, so
each note is printed with its question for a reader to judge.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", type=Path,
                    default=[ROOT / "data/eval/stard_train.jsonl",
                             ROOT / "data/eval/citation_queries.jsonl"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from legalrag.answer.assistant import corpus_facts
    from legalrag.answer.check import cites_only, premise_notes
    from legalrag.config import Settings
    from legalrag.retrieval.evaluate import load_queries
    from legalrag.retrieval.retriever import Retriever

    facts = corpus_facts(Retriever.open(Settings.load()))
    results = {}
    for path in args.files:
        queries = load_queries(path)
        noted = [(q.query, premise_notes(q.query, facts)) for q in queries]
        noted = [(text, notes) for text, notes in noted if notes]
        only = [q.query for q in queries if cites_only(q.query)]
        for text, notes in noted:
            print(f"{path.name}: {text}\n    " + "\n    ".join(notes))
        results[path.name] = {"questions": len(queries), "with a note": len(noted),
                              "asking only for what they cite": len(only),
                              "noted": [{"question": t, "notes": list(n)} for t, n in noted]}
        print(f"{path.name}: {len(queries)} questions, {len(noted)} with a note, "
              f"{len(only)} asking only for what they cite", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
