"""How many sentences of the model's answers cite nothing, and how often they stand beside a ✓.

    .venv/bin/python bench/uncited_sentences.py [ANSWERS_JSON ...] [--list]

Reads `legalrag eval-answers` answers.json files (default: the whole-dev run on the
AVX2-only floor, bench/results/answers/dev-floor-qa) and finds, with the product's own
`check.uncited_sentences`, the sentences the chat now marks 〔未引条文〕. Runs written
before the mark existed work too: the sentences are found again from each answer's text,
citations and sources. No model is loaded. --list prints every such sentence.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    from legalrag.answer.check import CheckedCitation, uncited_sentences
    from legalrag.records import Article
    from legalrag.vocab import VERIFIED

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("answers", nargs="*", type=Path,
                    default=[ROOT / "bench/results/answers/dev-floor-qa/answers.json"])
    ap.add_argument("--list", action="store_true", help="print every uncited sentence")
    args = ap.parse_args()
    fields = set(Article.__dataclass_fields__)
    for path in args.answers:
        answered = with_uncited = sentences = beside_tick = 0
        starts: Counter[str] = Counter()
        for q in json.loads(path.read_text(encoding="utf-8"))["questions"]:
            a = q["answer"]
            if a["abstained"]:
                continue
            answered += 1
            hits = {h["id"]: h for h in a["hits"]}
            sources = [Article(**{k: v for k, v in hits[s["id"]].items() if k in fields}
                               | {"path": tuple(hits[s["id"]]["path"]), "line": 0,
                                  "category": ""})
                       for s in a["sources"] if s["id"] in hits]
            cited = [CheckedCitation(c["kind"], c["raw"], c["start"], c["end"], c["label"])
                     for c in a["citations"]]
            raw = a["raw_text"]
            spans = uncited_sentences(raw, cited, sources)
            if not spans:
                continue
            with_uncited += 1
            sentences += len(spans)
            beside_tick += any(c.label == VERIFIED and c.kind != "passage" for c in cited)
            for s, e in spans:
                starts["因此/所以/综上" if raw[s:e].startswith(("因此", "所以", "综上"))
                       else "如果/但是" if raw[s:e].startswith(("如果", "但是", "但"))
                       else "other"] += 1
                if args.list:
                    print(f"{q['id']}\t{raw[s:e]}")
        print(f"{path}: {answered} answered; {with_uncited} ({with_uncited / answered:.1%}) "
              f"with a sentence that cites nothing, {sentences} sentences "
              f"({', '.join(f'{k} {v}' for k, v in starts.most_common())}); "
              f"{beside_tick} of those answers also have a ✓ citation by the model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
