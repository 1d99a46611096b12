"""Lay words to statute words for BM25, learned from the tune part: measured on dev.

    .venv/bin/python bench/try_term_expansion.py [--hybrid] [--out FILE]

People ask in their words (违章建筑, 老板, 工资); the articles use the statute's (违法建筑,
用人单位, 劳动报酬). BM25 only matches shared words. This learns which article words a
question word calls for, from the tune questions and their gold articles only. For a
question word q and an article word a the question does not contain: n(q, a) counts the
tune questions that hold q and whose gold articles hold a, and the lift is
(n(q, a) / n(q)) / (the share of in-force articles holding a). A pair is kept when n(q, a)
reaches --support, n(q, a) / n(q) reaches --precision and the lift reaches --lift; a
question word keeps at most --per-word statute words. A question's BM25 query is then its
own tokens plus the kept words of each of them, each once.

BM25 is not trained on anything, so BM25 alone is judged on the tune part and on dev with
a table learned from the tune part (tune is in sample for the table, dev is not). With
--hybrid, dev also goes through the product's whole search with the expanded BM25 query
(the encoder, reranker and cross-encoder unchanged).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def learn(retriever, questions: list[dict], support: int, precision: float, lift: float,
          per_word: int) -> dict[str, list[str]]:
    from tune_fusion import gold_keys

    seg = retriever.segmenter
    text = {(a.law, a.number, a.suffix): a.text for a in retriever.articles if a.in_force}
    n_articles = len(text)
    df: Counter = Counter()
    for t in text.values():
        df.update(set(seg.tokenize(t)))
    n_q: Counter = Counter()
    n_qa: dict[str, Counter] = defaultdict(Counter)
    for q in questions:
        words = set(seg.tokenize(q["query"]))
        gold = set()
        for k in gold_keys(retriever, q["relevant"]):
            if k in text:
                gold.update(seg.tokenize(text[k]))
        if not gold:
            continue
        n_q.update(words)
        for w in words:
            n_qa[w].update(gold - words)
    table = {}
    for w, pairs in n_qa.items():
        kept = []
        for a, n in pairs.most_common():
            if n < support:
                break
            p = n / n_q[w]
            if p >= precision and p / (df[a] / n_articles) >= lift:
                kept.append((p, a))
        if kept:
            table[w] = [a for _, a in sorted(kept, reverse=True)[:per_word]]
    return table


class Expanding:
    """The index's segmenter, with a question's words followed by their statute words."""

    def __init__(self, seg, table: dict[str, list[str]]):
        self.seg, self.table = seg, table

    def tokenize(self, text: str) -> list[str]:
        words = self.seg.tokenize(text)
        extra = []
        for w in words:
            extra.extend(a for a in self.table.get(w, ()) if a not in words and a not in extra)
        return words + extra


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--support", type=int, default=3)
    ap.add_argument("--precision", type=float, nargs="+", default=[0.3, 0.5])
    ap.add_argument("--lift", type=float, default=20.0)
    ap.add_argument("--per-word", type=int, default=3)
    ap.add_argument("--hybrid", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from legalrag.config import Settings
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import load_queries, run_eval
    from legalrag.retrieval.retriever import Retriever

    path = ROOT / "data/eval/stard_train.jsonl"
    raw = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    queries = load_queries(path)
    parts = {p: [q for q in queries if split_of(q.id) == p] for p in ("tune", "dev")}
    retriever = Retriever.open(Settings.load())
    plain = retriever.segmenter
    keys = ("hit@5", "recall@5", "recall@10", "recall@100", "mrr@10")
    results = {}

    def measure(name: str, table: dict | None, modes: tuple[str, ...]):
        retriever.segmenter = plain if table is None else Expanding(plain, table)
        for part, qs in parts.items():
            if part == "tune" and modes != ("bm25",):
                continue  # the encoder and reranker learned the tune part
            agg = run_eval(retriever, qs, modes=modes, ks=(5, 10, 100)).aggregate
            for mode in modes:
                row = {k: round(agg[mode][k], 4) for k in keys}
                results[f"{name}, {mode}, {part}"] = row
                print(f"{name}, {mode}, {part}: {row}", flush=True)

    tune_raw = [q for q in raw if split_of(q["id"]) == "tune"]
    measure("no expansion", None, ("bm25",))
    if args.hybrid:
        measure("no expansion", None, ("hybrid",))
    for precision in args.precision:
        retriever.segmenter = plain  # learn from the plain tokens, never an expanded query's
        table = learn(retriever, tune_raw, args.support, precision, args.lift, args.per_word)
        name = f"support {args.support}, precision {precision}, lift {args.lift}"
        results[f"{name}: table"] = {"words": len(table), "sample": dict(list(table.items())[:40])}
        print(f"{name}: {len(table)} words, e.g. {list(table.items())[:15]}", flush=True)
        measure(name, table, ("bm25",))
        if args.hybrid:
            measure(name, table, ("hybrid",))
    retriever.segmenter = plain
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
