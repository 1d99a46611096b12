"""A cross-encoder over the top of today's ranking: train it on the STARD tune part, measure
it on dev. An experiment for issue 13; the product does not use it.

    .venv/bin/python bench/train_cross.py [--cache FILE] [--out FILE] [--depth 20]

1. The product's hybrid search (default settings, the live index) runs once per question;
   its top `depth` hits are kept with their rank and the gold keys (cached with --cache).
2. A BERT cross-encoder is initialised from m3e-small (the embedding model the project
   already installs) with a linear head on [CLS], and trained listwise on 80% of the tune
   questions: one gold article against `negatives` hard negatives drawn from the same
   question's top hits, softmax cross-entropy. Input: the question, then the article's
   citation and text, cut to `max_len` tokens.
3. The other 20% of the tune part chooses how the cross-encoder's order is fused with the
   product's (reciprocal ranks, weight w; w = 0 is today's ranking); dev is only reported.

Hits below `depth` keep their place, so Recall@k for k >= depth cannot change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def collect(queries: list, depth: int) -> list[dict]:
    from legalrag.config import Settings
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import resolve_gold
    from legalrag.retrieval.retriever import Retriever

    # without the stage this trains (it would reorder the tune questions it learned)
    retriever = Retriever.open(replace(Settings.load(), cross_encoder=""))
    rows = []
    t0 = time.perf_counter()
    for i, q in enumerate(queries):
        golds = [resolve_gold(c, retriever) for c in q.relevant]
        gold = {(g.law, g.number, g.suffix) for g in golds if g.resolved}
        hits = retriever.search(q.query, k=depth, mode="hybrid")
        rows.append({"id": q.id, "part": split_of(q.id), "query": q.query, "gold": gold,
                     "hits": [((h.article.law, h.article.number, h.article.suffix),
                               h.article.citation + "\n" + h.article.text) for h in hits]})
        if (i + 1) % 100 == 0:
            print(f"{i + 1} questions, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return rows


def holdout(qid: str) -> bool:
    """One tune question in five chooses the fusion weight and is never trained on."""
    return int(hashlib.sha1(qid.encode("utf-8")).hexdigest(), 16) % 5 == 0


class Cross:
    def __init__(self, max_len: int, layers: int = 0):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from legalrag.index.embed import embedding_model_dir

        path = embedding_model_dir("m3e-small")
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(path)
        self.bert = AutoModel.from_pretrained(path)
        if layers:  # keep only the first layers: a cheaper model to train and to run
            self.bert.encoder.layer = self.bert.encoder.layer[:layers]
            self.bert.config.num_hidden_layers = layers
        self.head = torch.nn.Linear(self.bert.config.hidden_size, 1)
        self.max_len = max_len

    def groups(self, lr: float) -> list[dict]:
        """The encoder at lr, the new head 20 times faster; the word embeddings stay the
        base model's (fewer weights to learn from 800 questions, and to keep)."""
        self.bert.embeddings.word_embeddings.weight.requires_grad_(False)
        body = [p for p in self.bert.parameters() if p.requires_grad]
        return [{"params": body, "lr": lr}, {"params": self.head.parameters(), "lr": 20 * lr}]

    def save(self, path: Path) -> None:
        self.torch.save({"bert": self.bert.state_dict(), "head": self.head.state_dict()}, path)

    def load(self, path: Path) -> None:
        state = self.torch.load(path)
        self.bert.load_state_dict(state["bert"])
        self.head.load_state_dict(state["head"])
        self.bert.eval()

    def scores(self, query: str, texts: list[str]):
        batch = self.tok([query] * len(texts), texts, truncation="longest_first",
                         max_length=self.max_len, padding=True, return_tensors="pt")
        cls = self.bert(**batch).last_hidden_state[:, 0]
        return self.head(cls).squeeze(-1)


def train(model: Cross, rows: list[dict], epochs: int, negatives: int, lr: float,
          seed: int = 0) -> None:
    torch = model.torch
    rng = random.Random(seed)
    groups = []
    for r in rows:
        pos = [t for key, t in r["hits"] if key in r["gold"]]
        neg = [t for key, t in r["hits"] if key not in r["gold"]]
        for p in pos:
            if len(neg) >= negatives:
                groups.append((r["query"], p, neg))
    steps = epochs * len(groups)
    opt = torch.optim.AdamW(model.groups(lr), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * max(0.0, (steps - s) / steps))
    model.bert.train()
    step, t0, running = 0, time.perf_counter(), []
    for _ in range(epochs):
        rng.shuffle(groups)
        for query, pos, neg in groups:
            texts = [pos, *rng.sample(neg, negatives)]
            logits = model.scores(query, texts)
            loss = torch.nn.functional.cross_entropy(logits[None], torch.zeros(1, dtype=torch.long))
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
            running.append(loss.item())
            step += 1
            if step % 100 == 0:
                print(f"step {step}/{steps}: loss {np.mean(running[-100:]):.3f}, "
                      f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    model.bert.eval()


def score_rows(model: Cross, rows: list[dict], k: int) -> list[list[float]]:
    out = []
    with model.torch.inference_mode():
        for r in rows:
            texts = [t for _, t in r["hits"][:k]]
            out.append(model.scores(r["query"], texts).tolist() if texts else [])
    return out


def fused(n: int, ce: list[float], w: float, c: float = 10.0) -> list[int]:
    """Hit positions in fused order: 1/(c + product rank) + w/(c + cross-encoder rank)."""
    ce_rank = {i: r for r, i in enumerate(sorted(range(len(ce)), key=lambda i: -ce[i]), 1)}
    score = [1 / (c + i + 1) + (w / (c + ce_rank[i]) if i in ce_rank else 0.0) for i in range(n)]
    return sorted(range(n), key=lambda i: (-score[i], i))


def metrics(rows: list[dict], ces: list[list[float]], w: float) -> dict[str, float]:
    r5 = r10 = mrr = h5 = 0.0
    for r, ce in zip(rows, ces, strict=True):
        order = [r["hits"][i][0] for i in fused(len(r["hits"]), ce, w)]
        gold = r["gold"]
        if not gold:
            continue
        r5 += len(gold & set(order[:5])) / len(gold)
        r10 += len(gold & set(order[:10])) / len(gold)
        h5 += bool(gold & set(order[:5]))
        mrr += next((1 / (i + 1) for i, key in enumerate(order[:10]) if key in gold), 0.0)
    n = len(rows)
    return {"recall@5": r5 / n, "recall@10": r10 / n, "hit@5": h5 / n, "mrr@10": mrr / n, "n": n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--cache", type=Path, help="keep the retrieved hits here (pickle)")
    ap.add_argument("--out", type=Path, help="write the results here (JSON)")
    ap.add_argument("--depth", type=int, default=20, help="hits retrieved and reranked")
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--negatives", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", type=Path, help="keep the trained weights here (torch state)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tune_fusion import cached

    from legalrag.retrieval.evaluate import load_queries

    rows = cached(args.cache, lambda: collect(load_queries(args.queries), args.depth))
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    fit = [r for r in rows if r["part"] == "tune" and not holdout(r["id"])]
    held = [r for r in rows if r["part"] == "tune" and holdout(r["id"])]
    dev = [r for r in rows if r["part"] == "dev"]
    model = Cross(args.max_len)
    t0 = time.perf_counter()
    loaded = bool(args.save and args.save.exists())
    if loaded:
        model.load(args.save)
    else:
        train(model, fit, args.epochs, args.negatives, args.lr)
        if args.save:
            model.save(args.save)
    train_s = time.perf_counter() - t0  # loading, when --save held trained weights
    t0 = time.perf_counter()
    ce_held, ce_dev = score_rows(model, held, args.depth), score_rows(model, dev, args.depth)
    per_q_ms = 1000 * (time.perf_counter() - t0) / (len(held) + len(dev))
    weights = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 1000.0)
    table = [{"w": w, "tune_held": metrics(held, ce_held, w), "dev": metrics(dev, ce_dev, w)}
             for w in weights]
    best = max(table, key=lambda t: t["tune_held"]["recall@5"] + t["tune_held"]["recall@10"]
               + t["tune_held"]["mrr@10"])
    for t in table:
        h, d = t["tune_held"], t["dev"]
        mark = " <- chosen on tune-held" if t is best else ""
        print(f"w {t['w']:>6}: held R@5 {h['recall@5']:.3f} R@10 {h['recall@10']:.3f} "
              f"MRR {h['mrr@10']:.3f} | dev R@5 {d['recall@5']:.3f} R@10 {d['recall@10']:.3f} "
              f"Hit@5 {d['hit@5']:.3f} MRR {d['mrr@10']:.3f}{mark}")
    print(f"training {train_s:.0f} s on {len(fit)} questions; scoring {per_q_ms:.0f} ms per "
          f"question ({args.depth} hits, {args.max_len} tokens, {args.threads} threads)")
    if args.out:
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.out.write_text(json.dumps({"settings": settings,
                                        "train_seconds": None if loaded else train_s,
                                        "score_ms_per_question":
                                        per_q_ms, "chosen_w": best["w"], "table": table},
                                       ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
