"""Does training the article side as well pay? Dense recall out of fold, on a proxy corpus.

    .venv/bin/python bench/try_two_tower.py --encoders DIR [--epochs 2] [--lr 2e-5] \
        [--negatives 8] [--batch 16] [--freeze 2] [--cache DIR] [--out FILE]

The product trains the query encoder only, against the articles' fixed vectors (the shipped
vectors of the base m3e-small). Issue 13 asks whether a two-tower fine-tune, the article
encoder trained too, would find more. Re-embedding the 56,460 in-force articles takes
12 min on 2 cores (fp32 torch), once per setting and fold, so this measures on a proxy
corpus: the in-force articles of the laws that hold a gold article of some tune question
(about 10,000 articles of 112 laws). The comparison is fair within the proxy, not its level.

For each of the two folds of bench/tune_fusion.py, with that fold's query encoder from
--encoders (trained on the other fold, as bench/tune_fusion.py and bench/try_rerankers.py
use them):
- before: the fold's questions against the base model's vectors of the proxy corpus;
- after: an article encoder, initialised from the base model, is trained on the other
  fold's questions with the query encoder frozen: per step a batch of questions, their
  gold articles and `negatives` hard negatives (the best non-gold articles for the
  question's vector, mined once) embedded afresh, every other in-force article by its
  fixed vector, the softmax of legalrag.index.tune (scale 50, each gold on its own). Its
  layers below --freeze keep the base weights. The proxy corpus is then embedded again
  and the fold's questions searched.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def recall(q: np.ndarray, examples, docs: np.ndarray, local: dict[int, int]) -> dict:
    r10 = r100 = 0.0
    n = 0
    for e, s in zip(examples, q @ docs.T, strict=True):
        gold = {local[g] for g in e.gold_rows if g in local}
        if not gold:
            continue
        top = np.argpartition(-s, 100)[:100]
        top10 = set(top[np.argsort(-s[top])][:10].tolist())
        r10 += len(gold & top10) / len(gold)
        r100 += len(gold & set(top.tolist())) / len(gold)
        n += 1
    return {"R@10": round(r10 / n, 4), "R@100": round(r100 / n, 4), "questions": n}


SUMMARY = ("before", "before, index vectors", "after")


def summarize(result: dict) -> None:
    """Both folds together, each question once."""
    for key in SUMMARY:
        rows = [f[key] for f in result["folds"]]
        result[key] = {m: round(sum(r[m] * r["questions"] for r in rows)
                                / sum(r["questions"] for r in rows), 4) for m in ("R@10", "R@100")}


def embed(model, texts: list[str], batch: int = 32) -> np.ndarray:
    return model.encode(texts, batch_size=batch, normalize_embeddings=True,
                        convert_to_numpy=True).astype(np.float32)


def train_articles(base_path: Path, queries: np.ndarray, examples, texts: list[str],
                   stale: np.ndarray, args) -> object:
    import torch
    from sentence_transformers import SentenceTransformer

    from legalrag.index.tune import gold_loss

    rng = random.Random(42)
    torch.manual_seed(42)
    torch.set_num_threads(2)
    model = SentenceTransformer(str(base_path), device="cpu")
    model.max_seq_length = args.max_length
    for name, p in model.named_parameters():
        frozen = ".embeddings." in name or any(f".layer.{i}." in name
                                                 for i in range(args.freeze))
        p.requires_grad_(not frozen)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    stale_t = torch.from_numpy(stale)
    q_all = torch.from_numpy(queries)
    negatives = []
    for i, e in enumerate(examples):
        s = stale @ queries[i]
        s[list(e.gold_rows)] = -9.0
        negatives.append(np.argpartition(-s, args.negatives)[:args.negatives].tolist())
    order = list(range(len(examples)))
    steps = 0
    t0 = time.perf_counter()
    model.train()
    for epoch in range(args.epochs):
        rng.shuffle(order)
        losses = []
        for start in range(0, len(order), args.batch):
            idx = order[start:start + args.batch]
            rows = sorted({r for i in idx for r in (*examples[i].gold_rows, *negatives[i])})
            col = {r: j for j, r in enumerate(rows)}
            feats = model.tokenize([texts[r] for r in rows])
            fresh = torch.nn.functional.normalize(model(feats)["sentence_embedding"], dim=-1)
            q = q_all[idx]
            rest = q @ stale_t.T
            rest[:, rows] = -1e4 / args.scale  # these articles are scored afresh
            logits = args.scale * torch.cat([q @ fresh.T, rest], dim=1)
            mask = torch.zeros_like(logits, dtype=torch.bool)
            for b, i in enumerate(idx):
                mask[b, [col[g] for g in examples[i].gold_rows]] = True
            loss = gold_loss(logits, mask, "each")
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(loss.item())
            steps += 1
        print(f"epoch {epoch + 1}: loss {np.mean(losses):.3f}, {steps} steps, "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    model.eval()
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--encoders", type=Path, required=True,
                    help="fold0/ and fold1/: bench/tune_fusion.py's fold query encoders")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--negatives", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--freeze", type=int, default=2, help="layers kept at the base weights")
    ap.add_argument("--scale", type=float, default=50.0)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--cache", type=Path, help="keep the base vectors of the proxy corpus here")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from tune_fusion import fold_of

    from legalrag.config import Settings
    from legalrag.index.build import embed_text
    from legalrag.index.embed import embedding_model_dir
    from legalrag.index.tune import load_questions, make_examples
    from legalrag.retrieval.retriever import Retriever

    retriever = Retriever.open(Settings.load(), verify=False)
    questions = load_questions(args.queries)
    tune, rows = make_examples(questions, retriever.articles, "tune")
    articles = [retriever.articles[r] for r in rows]
    texts = [embed_text(a) for a in articles]
    stale = retriever.dense.reconstruct_n(0, retriever.dense.ntotal)[rows].astype(np.float32)
    laws = {articles[g].law for e in tune for g in e.gold_rows}
    proxy = [i for i, a in enumerate(articles) if a.law in laws]
    local = {r: j for j, r in enumerate(proxy)}
    print(f"proxy corpus: {len(proxy)} articles of {len(laws)} laws", file=sys.stderr)
    base_path = embedding_model_dir(retriever.settings.embedding_model)
    cache = args.cache / f"base-{args.max_length}.npy" if args.cache else None
    if cache and cache.exists():
        before = np.load(cache)
    else:
        base = SentenceTransformer(str(base_path), device="cpu")
        base.max_seq_length = args.max_length
        t0 = time.perf_counter()
        before = embed(base, [texts[i] for i in proxy])
        print(f"base vectors: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, before)
    ids = {q["query"]: q["id"] for q in questions}
    result = {"settings": {k: (str(v) if isinstance(v, Path) else v)
                           for k, v in vars(args).items()},
              "proxy_articles": len(proxy), "proxy_laws": len(laws), "folds": []}
    for fold in (0, 1):
        judged = [e for e in tune if fold_of(ids[e.query]) == fold]
        train_on = [e for e in tune if fold_of(ids[e.query]) != fold]
        qenc = SentenceTransformer(str(args.encoders / f"fold{fold}"), device="cpu")
        qenc.max_seq_length = 64
        q_judged = embed(qenc, [e.query for e in judged])
        q_train = embed(qenc, [e.query for e in train_on])
        row = {"fold": fold, "before": recall(q_judged, judged, before, local),
               "before, index vectors": recall(q_judged, judged, stale[proxy], local)}
        t0 = time.perf_counter()
        model = train_articles(base_path, q_train, train_on, texts, stale, args)
        row["train_seconds"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        after = embed(model, [texts[i] for i in proxy])
        row["embed_seconds"] = round(time.perf_counter() - t0, 1)
        row["after"] = recall(q_judged, judged, after, local)
        row["after, trained questions"] = recall(q_train, train_on, after, local)
        row["before, trained questions"] = recall(q_train, train_on, before, local)
        print(json.dumps(row), flush=True)
        result["folds"].append(row)
    summarize(result)
    print(json.dumps({k: result[k] for k in SUMMARY}))
    if args.out:
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
