"""Are long articles where retrieval misses? Recall of gold articles grouped by how much of
them the embedding model sees.

    LEGALRAG_INDEX_DIR=... .venv/bin/python bench/recall_by_length.py [--split dev] [--out FILE]

The embedding model reads an article's first `embedding_max_length` tokens (256; what the
index embeds is index.build.embed_text: title, headings, label, text). An article longer
than that is embedded by its beginning only, so a question about its last paragraph has
to be found by BM25 or not at all. If that cost recall, embedding long articles paragraph
by paragraph (issue 13's "long articles" lever) would pay. This script runs the product's
search (hybrid, top 100) over one part's questions and reports Recall@5/10/100 of the
gold articles in three groups by their token count under the embedding model's tokenizer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def group_of(tokens: int, limit: int) -> str:
    if tokens > limit:
        return f"longer than {limit} tokens (cut)"
    if tokens > limit * 3 // 4:
        return f"{limit * 3 // 4 + 1}–{limit} tokens"
    return f"up to {limit * 3 // 4} tokens"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--split", default="dev", choices=("dev", "tune"))
    ap.add_argument("--out", type=Path, help="write the table here (JSON)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    from legalrag.config import Settings
    from legalrag.index.build import embed_text
    from legalrag.index.embed import embedding_model_dir
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import load_queries, resolve_gold
    from legalrag.retrieval.retriever import Retriever

    settings = Settings.load()
    retriever = Retriever.open(settings, verify=False)
    tokenizer = AutoTokenizer.from_pretrained(embedding_model_dir(settings.embedding_model))
    limit = settings.embedding_max_length
    table: dict[str, dict[str, int]] = {}
    for q in load_queries(args.queries):
        if split_of(q.id) != args.split:
            continue
        hits = retriever.search(q.query, k=100, mode="hybrid")
        ranked = [(h.article.law, h.article.number, h.article.suffix) for h in hits]
        for citation in q.relevant:
            gold = resolve_gold(citation, retriever)
            if not gold.resolved:
                continue
            found = [a for a in retriever.lookup(gold.law, gold.number, gold.suffix)
                     if a.in_force]
            if not found:
                continue
            tokens = len(tokenizer(embed_text(found[0]))["input_ids"])
            row = table.setdefault(group_of(tokens, limit),
                                   {"golds": 0, "top5": 0, "top10": 0, "top100": 0})
            key = (gold.law, gold.number, gold.suffix)
            row["golds"] += 1
            for k in (5, 10, 100):
                row[f"top{k}"] += key in ranked[:k]
    out = {name: {"golds": r["golds"],
                  **{f"R@{k}": round(r[f"top{k}"] / r["golds"], 3) for k in (5, 10, 100)}}
           for name, r in sorted(table.items())}
    for name, r in out.items():
        print(f"{name}: {r}")
    if args.out:
        args.out.write_text(json.dumps({"split": args.split, "groups": out},
                                       ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
