"""`legalrag retrieve`: the articles that best match a question."""

from __future__ import annotations

import argparse
import json
import sys

from legalrag.cli.common import load_settings
from legalrag.vocab import MODES


def cmd_retrieve(args: argparse.Namespace) -> int:
    from legalrag.retrieval.retriever import Retriever

    settings = load_settings(args)
    retriever = Retriever.open(settings)
    hits = retriever.search(args.query, k=args.k, mode=args.mode, include_old=args.include_old)
    if "dense" not in retriever.parts:
        print("note: the dense index is not built yet; results use BM25 and exact lookup",
              file=sys.stderr)
    terms = retriever.glossary.terms(args.query.strip()) if retriever.glossary else []
    if terms and not any("lookup" in h.ranks for h in hits):
        print(f"note: searched with the statute terms of everyday words: {' '.join(terms)} "
              "(query_glossary = false turns this off)", file=sys.stderr)
    if args.json:
        for h in hits:
            print(json.dumps(h.to_dict(), ensure_ascii=False))
        return 0
    if not hits:
        print("no matching articles")
    for h in hits:
        a = h.article
        status = "" if a.in_force else "  [不是现行有效版本 / not in force]"
        ranks = ", ".join(f"{k}#{v}" for k, v in sorted(h.ranks.items()))
        print(f"{h.rank:>3}. {a.citation}  ({a.version or '日期不详'}){status}")
        print(f"     {' › '.join(a.path)}  [{ranks}]")
        text = a.text if args.full else (a.text[:160] + ("…" if len(a.text) > 160 else ""))
        for line in text.splitlines():
            print(f"     {line}")
    return 0




def register(sub: argparse._SubParsersAction) -> None:
    ret = sub.add_parser("retrieve", help="the articles that best match a question")
    ret.add_argument("query")
    ret.add_argument("-k", type=int, default=10)
    ret.add_argument("--mode", choices=MODES, default=MODES[0])
    ret.add_argument("--include-old", action="store_true", help="include superseded versions")
    ret.add_argument("--json", action="store_true", help="one JSON object per hit")
    ret.add_argument("--full", action="store_true", help="print whole article texts")
    ret.set_defaults(func=cmd_retrieve)
