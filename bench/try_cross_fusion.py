"""Try other ways to join the cross-encoder's scores with the ranking's, out of fold.

    .venv/bin/python bench/try_cross_fusion.py DUMP [--out FILE]

DUMP is what `bench/train_cross_oof.py --dump` keeps: every tune question's best hits as the
product ranks them without the stage (retrieved out of fold, with their reranker scores),
the scores of a cross-encoder that never saw the question, and the same for the dev part
with the final model. The product fuses ranks only, 1/(10 + rank) + w/(10 + cross rank),
over the best 20; that drops how far apart the scores are. Tried here:

- score sums: (rerank - best rerank) + a * (cross - best cross);
- a logistic regression over both ranks' reciprocal terms and both score gaps, trained on
  one fold's questions and judged on the other's (then on all tune questions for dev).

Chosen by R@5 + R@10 + MRR@10 over the tune part; dev is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np

DEPTH = 20
C = 10.0


def columns(r: dict, ce: list[float]) -> np.ndarray:
    n = min(DEPTH, len(r["hits"]))
    ce = np.asarray(ce[:n], dtype=np.float64)
    s = np.array([np.nan if v is None else v for v in r["rerank"][:n]], dtype=np.float64)
    s[np.isnan(s)] = np.nanmin(s) if not np.isnan(s).all() else 0.0  # joined by a reference
    rank = np.arange(1, n + 1)
    ce_rank = np.empty(n)
    ce_rank[np.argsort(-ce, kind="stable")] = np.arange(1, n + 1)
    return np.stack([1 / (C + rank), 1 / (C + ce_rank), s - s.max(), ce - ce.max()], axis=1)


def metrics(rows: list, scorer) -> dict[str, float]:
    out = {"hit@1": 0.0, "hit@5": 0.0, "recall@5": 0.0, "recall@10": 0.0, "mrr@10": 0.0}
    for r, ce in rows:
        x = columns(r, ce)
        top = list(np.argsort(-scorer(x), kind="stable")) + list(range(len(x), len(r["hits"])))
        order = [r["hits"][i][0] for i in top]
        gold, n = r["gold"], max(1, r["n"])
        out["hit@1"] += bool(gold & set(order[:1]))
        out["hit@5"] += bool(gold & set(order[:5]))
        out["recall@5"] += min(1.0, len(gold & set(order[:5])) / n)
        out["recall@10"] += min(1.0, len(gold & set(order[:10])) / n)
        out["mrr@10"] += next((1 / (i + 1) for i, k in enumerate(order[:10]) if k in gold), 0.0)
    return {k: round(v / len(rows), 4) for k, v in out.items()}


def logistic(rows: list, cols: list[int]):
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([columns(r, ce)[:, cols] for r, ce in rows])
    y = np.concatenate([[k in r["gold"] for k, _ in r["hits"][:DEPTH]] for r, _ in rows])
    mu, sd = x.mean(0), x.std(0) + 1e-9
    model = LogisticRegression(class_weight="balanced", C=1.0, max_iter=1000)
    model.fit((x - mu) / sd, y)
    return lambda xx: model.decision_function((xx[:, cols] - mu) / sd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dump", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    data = pickle.loads(args.dump.read_bytes())
    tune, dev = data["tune"], data["dev"]
    folds = [[t for t in tune if t[0]["fold"] == f] for f in (0, 1)]
    fixed = {f"ranks, w = {w}": lambda x, w=w: x[:, 0] + w * x[:, 1]
             for w in (0.0, 0.5, 0.75, 1.0)}
    fixed |= {f"scores, a = {a}": lambda x, a=a: x[:, 2] + a * x[:, 3]
              for a in (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5)}
    fixed |= {f"ranks w = 0.75, + scores b = {b}":
              lambda x, b=b: x[:, 0] + 0.75 * x[:, 1] + b * (x[:, 2] + 0.3 * x[:, 3])
              for b in (0.001, 0.003, 0.01)}
    results = {}
    for name, scorer in fixed.items():
        results[name] = {"tune": metrics(tune, scorer), "dev": metrics(dev, scorer)}
    learned = {"logistic, ranks": [0, 1], "logistic, scores": [2, 3],
               "logistic, ranks and scores": [0, 1, 2, 3]}
    for name, cols in learned.items():
        cv = [metrics(folds[f], logistic(folds[1 - f], cols)) for f in (0, 1)]
        n0, n1 = len(folds[0]), len(folds[1])
        results[name] = {"tune": {k: round((cv[0][k] * n0 + cv[1][k] * n1) / (n0 + n1), 4)
                                  for k in cv[0]},
                         "dev": metrics(dev, logistic(tune, cols))}
    for name, m in results.items():
        t, d = m["tune"], m["dev"]
        m["sum"] = round(t["recall@5"] + t["recall@10"] + t["mrr@10"], 4)
        print(f"{name:36s} tune {t['hit@1']:.3f} {t['hit@5']:.3f} {t['recall@5']:.3f} "
              f"{t['recall@10']:.3f} {t['mrr@10']:.3f} (sum {m['sum']:.3f}) | dev "
              f"{d['hit@1']:.3f} {d['hit@5']:.3f} {d['recall@5']:.3f} {d['recall@10']:.3f} "
              f"{d['mrr@10']:.3f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
