"""The marks the chat adds beside a model's words: sentences that cite nothing 〔未引条文〕,
and ✓ sentences whose article adds an exception they leave out 〔所引条文另有例外〕.

    .venv/bin/python bench/answer_marks.py [ANSWERS_JSON ...] [--list]

Reads `legalrag eval-answers` answers.json files (default: the whole-dev run on the
AVX2-only floor, bench/results/answers/dev-floor-qa) and finds both with the product's own
functions (`check.uncited_sentences`, `check.note_provisos`). Runs written before the
marks existed work too: they are found again from each answer's text, its checked
citations and its sources. No model is loaded. --list prints every marked sentence.
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
    from legalrag.answer.check import (
        CheckedCitation,
        copied_passages,
        note_provisos,
        uncited_sentences,
    )
    from legalrag.index.corpus import parse_corpus
    from legalrag.vocab import VERIFIED

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("answers", nargs="*", type=Path,
                    default=[ROOT / "bench/results/answers/dev-floor-qa/answers.json"])
    ap.add_argument("--list", action="store_true", help="print every marked sentence")
    args = ap.parse_args()
    # The sources by id from the shipped corpus: an article a source points to (依照本法第X条)
    # is read by the model without being among the hits the answer stores.
    articles = {a.id: a for a in parse_corpus(ROOT / "corpus").articles}
    for path in args.answers:
        answered = with_uncited = sentences = beside_tick = 0
        ticks = with_proviso = 0
        starts: Counter[str] = Counter()
        for q in json.loads(path.read_text(encoding="utf-8"))["questions"]:
            a = q["answer"]
            if a["abstained"]:
                continue
            answered += 1
            sources = [articles[s["id"]] for s in a["sources"]]
            cited = [CheckedCitation(c["kind"], c["raw"], c["start"], c["end"], c["label"],
                                     source=c["source"]) for c in a["citations"]]
            raw = a["raw_text"]
            written = [c for c in cited if c.kind != "passage"]
            provisos = note_provisos(raw, written, sources, copied_passages(raw, sources))
            ticks += sum(c.label == VERIFIED for c in written)
            with_proviso += sum(bool(c.proviso) for c in provisos)
            if args.list:
                for c in provisos:
                    if c.proviso:
                        print(f"{q['id']}\t{c.raw}\t另有例外：{c.proviso}")
            spans = uncited_sentences(raw, cited, sources)
            if not spans:
                continue
            with_uncited += 1
            sentences += len(spans)
            beside_tick += any(c.label == VERIFIED for c in written)
            for s, e in spans:
                starts["因此/所以/综上" if raw[s:e].startswith(("因此", "所以", "综上"))
                       else "如果/但是" if raw[s:e].startswith(("如果", "但是", "但"))
                       else "other"] += 1
                if args.list:
                    print(f"{q['id']}\t{raw[s:e]}\t未引条文")
        print(f"{path}: {answered} answered; {with_uncited} ({with_uncited / answered:.1%}) "
              f"with a sentence that cites nothing, {sentences} sentences "
              f"({', '.join(f'{k} {v}' for k, v in starts.most_common())}); "
              f"{beside_tick} of those answers also have a ✓ citation by the model. "
              f"{with_proviso} of {ticks} ✓ citations by the model show 另有例外.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
