"""Which law is the question about? A classifier over the question's vector, added to the
reranker's score: chosen out of fold.

    .venv/bin/python bench/try_law_classifier.py --encoders DIR --cache POOLS \
        --vectors QVEC [--out FILE]

The reranker sees how an article's law fares among the candidates (its share of the best
ones), and the article prior how often the article itself was a gold one. Neither knows
which laws questions worded like this one need. This trains a logistic regression from the
query encoder's question vector to the laws of its gold articles (one sample per question
and gold law; laws with fewer than MIN_GOLDS training questions pooled as "other"), and
adds w * log P(the candidate's law | question) to the reranker's score beside the article
prior, the way bench/try_question_neighbours.py adds its vote.

Judged as that script judges (its pools and question vectors, made there if missing): two
folds of the tune part. A question of fold f is retrieved and embedded by the encoder
trained on the other fold, and the classifier is trained on the other fold's questions
through that same encoder (which learned them, as the product's encoder learned every
tune question). Dev questions use the index's encoder and a classifier trained on all tune
questions. Dev is reported, never used to choose. Also reported: how often the law of a
gold article is the classifier's first or among its first three (per gold law, out of
fold).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

MIN_GOLDS = 3
OTHER = ""
CS = (0.3, 1.0, 3.0, 10.0)
WEIGHTS = (0.1, 0.2, 0.35, 0.5, 0.75)
FLOOR = 1e-4  # log P is clipped here, so a law the classifier never saw is not -inf


def fit_laws(ids: list[str], vectors: dict, gold: dict, c: float):
    """(classifier, its classes) from the questions ids: one sample per (question, law)."""
    from sklearn.linear_model import LogisticRegression

    per_q = {i: sorted({k[0] for k in gold[i]}) for i in ids}
    seen = Counter(law for laws in per_q.values() for law in laws)
    x, y = [], []
    for i, laws in per_q.items():
        for law in laws:
            x.append(vectors[i])
            y.append(law if seen[law] >= MIN_GOLDS else OTHER)
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit(np.stack(x), np.array(y))
    return model


def law_logp(model, row: dict, vec: np.ndarray) -> np.ndarray:
    """log P(law of each pool candidate | question); a law outside the classes gets the
    "other" class's probability."""
    p = dict(zip(model.classes_, model.predict_proba(vec[None, :])[0], strict=True))
    other = p.get(OTHER, FLOOR)
    return np.log(np.maximum([p.get(k[0], other) for k in row["keys"]], FLOOR))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--encoders", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True,
                    help="bench/try_rerankers.py's pools (made there if missing)")
    ap.add_argument("--vectors", type=Path, required=True,
                    help="bench/try_question_neighbours.py's question vectors (made if missing)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from try_question_neighbours import question_vectors
    from try_rerankers import collect, linear, metrics, with_prior

    from legalrag.retrieval.rerank import FEATURES

    questions = [json.loads(x) for x in args.queries.read_text(encoding="utf-8").splitlines()
                 if x.strip()]
    if args.cache.exists():
        rows = pickle.loads(args.cache.read_bytes())
    else:
        rows = collect(questions, args.encoders)
        args.cache.write_bytes(pickle.dumps(rows))
    if args.vectors.exists():
        qvec = pickle.loads(args.vectors.read_bytes())
    else:
        qvec = question_vectors(questions, args.encoders)
        args.vectors.write_bytes(pickle.dumps(qvec))

    product = list(range(len(FEATURES)))
    prior_col = len(FEATURES) + 4  # after try_rerankers' EXTRA columns
    prior_weight = 0.75  # the product's article_prior
    train_rows = [r for r in rows if r["kind"] in ("in", "oof")]
    dev = [r for r in rows if r["kind"] == "dev"]
    gold = {r["id"]: r["gold"] for r in train_rows}
    fold_ids = {f: sorted({r["id"] for r in train_rows if r["fold"] == f}) for f in (0, 1)}

    # (scored rows, the reranker trained for them, their encoder, the classifier's questions)
    sets = []
    for fold in (0, 1):
        source = [r for r in train_rows if r["fold"] != fold]
        sets.append((with_prior([r for r in train_rows if r["fold"] == fold
                                 and r["kind"] == "oof"], source),
                     linear(product)(with_prior(source, source)), fold, fold_ids[1 - fold]))
    sets.append((with_prior(dev, train_rows), linear(product)(with_prior(train_rows, train_rows)),
                 "index", fold_ids[0] + fold_ids[1]))

    results: dict = {}

    def judge(name: str, extra: list[list[np.ndarray]], w: float) -> None:
        parts = []
        for (scored, base, _enc, _ids), e in zip(sets, extra, strict=True):
            fixed = [{**r, "x": np.hstack([r["x"], x[:, None]])}
                     for r, x in zip(scored, e, strict=True)]
            parts.append(metrics(fixed, lambda x, base=base: base(x[:, :-1])
                                 + prior_weight * x[:, prior_col] + w * x[:, -1]))
        cv = {k: round((parts[0][k] + parts[1][k]) / 2, 4) for k in parts[0]}
        chosen_by = round(cv["R@5"] + cv["R@10"] + cv["MRR@10"], 4)
        results[name] = {"tune out of fold (2-fold CV)": cv, "dev": parts[2],
                         "R@5 + R@10 + MRR@10, out of fold": chosen_by}
        print(f"{name}: CV {cv} (sum {chosen_by})\n    dev {parts[2]}", flush=True)

    zeros = [[np.zeros(len(r["keys"])) for r in scored] for scored, *_ in sets]
    judge("product: reranker + article prior", zeros, 0.0)
    for c in CS:
        extra, top = [], Counter()
        for scored, _base, enc, ids in sets:
            model = fit_laws(ids, qvec[enc], gold, c)
            extra.append([law_logp(model, r, qvec[enc][r["id"]]) for r in scored])
            if enc != "index":
                for r in scored:
                    p = model.predict_proba(qvec[enc][r["id"]][None, :])[0]
                    ranked = [model.classes_[j] for j in np.argsort(-p)]
                    for law in {k[0] for k in r["gold"]}:
                        top["gold laws"] += 1
                        top["first"] += ranked[0] == law
                        top["in the first 3"] += law in ranked[:3]
        results[f"C={c} law accuracy out of fold"] = dict(top)
        print(f"C={c}: {dict(top)}", flush=True)
        for w in WEIGHTS:
            judge(f"C={c}, + {w} x log P(law)", extra, w)
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
