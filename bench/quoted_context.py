"""What the quoted provision carries besides its own paragraph, on real questions, without
the chat model: how often it is a paragraph that refers to 前款 and is quoted after the
paragraph before (provision.Passage.before), and how often the best paragraph ends a list
of exceptions (…但下列商品除外：) and is quoted itself, where it used to give way to one of
its exceptions.

    .venv/bin/python bench/quoted_context.py [--split dev] [--out FILE]

Runs the product's search and the assistant's choice of provisions
(assistant.quoted_passages) over a part of the STARD training file, and prints every
question whose quote changed with its citation, for a reader to judge.
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
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--split", default="dev", choices=("dev", "tune", "all"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from legalrag.answer.assistant import corpus_facts, quoted_passages
    from legalrag.answer.provision import PassageScorer
    from legalrag.config import Settings
    from legalrag.index.embed import load_embedder
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import load_queries
    from legalrag.retrieval.retriever import Retriever

    settings = Settings.load()
    retriever = Retriever.open(settings)
    scorer = PassageScorer(load_embedder(settings).encode)
    names = corpus_facts(retriever).names
    queries = [q for q in load_queries(args.queries)
               if args.split == "all" or split_of(q.id) == args.split]
    quoted_any = with_before = exceptions = 0
    added: list[int] = []
    changed = []
    for q in queries:
        hits = retriever.search(q.query, k=settings.top_k)
        ranked, quoted = quoted_passages(scorer, q.query, hits, names, retriever.glossary)
        if not quoted:
            continue
        quoted_any += 1
        before = [p for p in quoted if p.before]
        added += [len(p.before) for p in before]
        # a paragraph ending in a colon quoted without an item although it has items:
        # only an exception list is kept so (provision._whole)
        whole = [p for p in quoted if p.item is None and p.text.rstrip().endswith(("：", ":"))
                 and any(r.article.id == p.article.id and r.paragraph == p.paragraph
                         and r.item is not None for r in ranked)]
        with_before += len(before)
        exceptions += len(whole)
        if before or whole:
            changed.append({"question": q.query, "now": [p.citation for p in quoted],
                            "quote": [p.quote for p in quoted]})
            print(f"{q.query}\n    {[p.citation for p in quoted]}", flush=True)
    results = {
        "questions": len(queries), "with a quote": quoted_any,
        "quotes with the paragraph before (前款)": with_before,
        "quoted exception lists (paragraph kept whole)": exceptions,
        "characters added per 前款 quote (mean)":
            round(sum(added) / len(added), 1) if added else 0,
        "changed": changed,
    }
    print({k: v for k, v in results.items() if k != "changed"})
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
