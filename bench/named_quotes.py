"""What a question naming an article is quoted, before the model speaks: the paragraph the
passage score picks, and what the product shows now (assistant.quoted_passages).

    .venv/bin/python bench/named_quotes.py [--queries data/eval/citation_queries.jsonl]
        [--out FILE]

For each question that names an article the corpus holds, the product's search runs and
the quote is chosen twice without the chat model: by the passage score alone
(provision.provisions over the named articles, the choice for every such question until
2026-12-07), and as the product does now, where a question that asks for the named
articles and nothing else (check.cites_only: 是怎么规定的, 是什么意思, 有什么区别) is quoted
the articles from their start, or the paragraph or item it cites. Every question whose
quote differs is printed with both, for a reader to judge.
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
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/citation_queries.jsonl")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from legalrag.answer.assistant import corpus_facts, quoted_passages
    from legalrag.answer.check import cites_only
    from legalrag.answer.provision import WHOLE_CHARS, PassageScorer, provisions
    from legalrag.config import Settings
    from legalrag.index.embed import load_embedder
    from legalrag.retrieval.evaluate import load_queries
    from legalrag.retrieval.retriever import Retriever

    settings = Settings.load()
    retriever = Retriever.open(settings)
    scorer = PassageScorer(load_embedder(settings).encode)
    names = corpus_facts(retriever).names
    rows = []
    named_questions = asking = 0
    for q in load_queries(args.queries):
        hits = retriever.search(q.query, k=settings.top_k)
        named = [h.article for h in hits if "lookup" in h.ranks]
        if not named:
            continue
        named_questions += 1
        asking += cites_only(q.query, names)
        ids = {a.id for a in named}
        ranked = [p for p in scorer.rank(q.query, [h.article for h in hits])
                  if p.article.id in ids]
        by_score = provisions(ranked, named)
        _, now = quoted_passages(scorer, q.query, hits, names, retriever.glossary)
        if [p.quote for p in by_score] != [p.quote for p in now]:
            rows.append({"id": q.id, "query": q.query,
                         "by_score": [f"{p.citation}：{p.quote}" for p in by_score],
                         "now": [f"{p.citation}：{p.quote}" for p in now]})
    print(f"{named_questions} questions name an article the corpus holds; {asking} ask for "
          f"it and nothing else; {len(rows)} are quoted differently")
    in_force = [a for a in retriever.articles if a.in_force]
    longer = sum(len(a.text.replace("\n", "")) > WHOLE_CHARS for a in in_force)
    print(f"in-force articles longer than {WHOLE_CHARS} characters: {longer} of "
          f"{len(in_force)} ({longer / len(in_force):.1%}), quoted in part")
    for r in rows:
        print(f"\n{r['id']} {r['query']}")
        for label in ("by_score", "now"):
            for line in r[label]:
                print(f"  {label:8} {line[:160]}")
    if args.out:
        args.out.write_text(json.dumps({"named": named_questions, "asking": asking,
                                        "longer_than_whole": [longer, len(in_force)],
                                        "changed": rows}, ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
