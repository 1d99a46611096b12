"""Try a question-neighbour vote offline: the gold articles of the training questions most
like a new question, added to the reranker's score. Chosen out of fold.

    LEGALRAG_INDEX_DIR=... .venv/bin/python bench/try_question_neighbours.py \
        --encoders DIR --cache FILE [--out FILE]

The article prior counts how often each article is gold over all the tune questions; it
helps the articles questions keep needing whatever the question. The vote asks the same of
the K tune questions nearest to this one (cosine of the query encoder's vectors): each
neighbour gives its gold articles a share softmax(cosine / tau), and a candidate's vote is
the sum of its shares (0 to 1). The reranker's score then gets weight * vote on top of
article_prior * log(1 + count), the prior's weight tried at 0-0.75 beside it (the vote may
stand in for part of the prior).

It reuses bench/try_rerankers.py's pools (--cache, the same pickle) and judges as it does:
two-fold cross-validation on the tune part. A question of fold f is retrieved by the
encoder trained on the other fold, and its neighbours are that other fold's questions
embedded by the same encoder (which learned them, as the product's encoder learned every
tune question). The prior's counts come from the other fold too. Dev questions go through
the index's encoder with all tune questions as neighbours. Dev is reported, never used to
choose.

It also counts how often a gold article is outside the pool of 600 but among the
neighbours' gold articles: what adding them to the pool could gain at most.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

KS = (5, 10, 20, 50)
TAUS = (0.02, 0.05, 0.1)
WEIGHTS = (0.5, 1.0, 2.0, 3.0, 5.0)
PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 0.75)


def question_vectors(questions: list[dict], encoders: Path) -> dict:
    """{(encoder name, question id): vector} for the index's encoder ("index") and the two
    fold encoders (0, 1), every question through each."""
    from tune_fusion import fold_encoders

    from legalrag.config import Settings
    from legalrag.retrieval.retriever import Retriever

    settings = Settings.load()
    product = Retriever.open(settings)
    texts = [q["query"] for q in questions]
    out = {"index": product.embedder.encode(texts)}
    for fold, path in enumerate(fold_encoders(product, questions, encoders)):
        r = Retriever(product.build_dir, replace(product.settings, query_encoder=str(path)),
                      verify=False, fusion=product.fusion)
        out[fold] = r.embedder.encode(texts)
    ids = [q["id"] for q in questions]
    return {name: dict(zip(ids, v, strict=True)) for name, v in out.items()}


def votes(row: dict, vec: np.ndarray, source: list[tuple], k: int, tau: float) -> np.ndarray:
    """The vote of each pool candidate: source is [(id, vector, gold keys)], the question
    itself left out."""
    others = [s for s in source if s[0] != row["id"]]
    sims = np.stack([s[1] for s in others]) @ vec
    top = np.argsort(-sims, kind="stable")[:k]
    w = np.exp((sims[top] - sims[top].max()) / tau)
    w /= w.sum()
    share: dict = {}
    for j, weight in zip(top, w, strict=True):
        for key in others[j][2]:
            share[key] = share.get(key, 0.0) + float(weight)
    return np.array([share.get(key, 0.0) for key in row["keys"]])


def neighbour_golds(row: dict, vec: np.ndarray, source: list[tuple], k: int) -> set:
    others = [s for s in source if s[0] != row["id"]]
    sims = np.stack([s[1] for s in others]) @ vec
    return {key for j in np.argsort(-sims, kind="stable")[:k] for key in others[j][2]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--encoders", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True,
                    help="bench/try_rerankers.py's pools (made there if missing)")
    ap.add_argument("--vectors", type=Path, help="keep the question vectors here (pickle)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from try_rerankers import collect, linear, metrics, with_prior

    from legalrag.retrieval.rerank import FEATURES

    questions = [json.loads(x) for x in args.queries.read_text(encoding="utf-8").splitlines()
                 if x.strip()]
    if args.cache.exists():
        rows = pickle.loads(args.cache.read_bytes())
    else:
        rows = collect(questions, args.encoders)
        args.cache.write_bytes(pickle.dumps(rows))
    if args.vectors and args.vectors.exists():
        qvec = pickle.loads(args.vectors.read_bytes())
    else:
        qvec = question_vectors(questions, args.encoders)
        if args.vectors:
            args.vectors.write_bytes(pickle.dumps(qvec))

    product = list(range(len(FEATURES)))
    prior_col = len(FEATURES) + 4  # after try_rerankers' EXTRA columns
    train_rows = [r for r in rows if r["kind"] in ("in", "oof")]
    dev = [r for r in rows if r["kind"] == "dev"]
    gold = {r["id"]: r["gold"] for r in train_rows}
    fold_ids = {f: sorted({r["id"] for r in train_rows if r["fold"] == f}) for f in (0, 1)}

    # (training rows, scored rows, the scored rows' encoder, the neighbours' ids)
    sets = []
    for fold in (0, 1):
        source = [r for r in train_rows if r["fold"] != fold]
        sets.append((with_prior(source, source),
                     with_prior([r for r in train_rows if r["fold"] == fold
                                 and r["kind"] == "oof"], source),
                     fold, fold_ids[1 - fold]))
    sets.append((with_prior(train_rows, train_rows), with_prior(dev, train_rows), "index",
                 fold_ids[0] + fold_ids[1]))

    scored_sets = []
    for trained, scored, enc, neighbours in sets:
        base = linear(product)(trained)
        source = [(i, qvec[enc][i], gold[i]) for i in neighbours]
        scored_sets.append((scored, base, enc, source))

    def judge(make_score) -> tuple[dict, dict]:
        cv = []
        for scored, base, enc, source in scored_sets[:2]:
            cv.append(metrics_of(scored, base, enc, source, make_score))
        scored, base, enc, source = scored_sets[2]
        dev_m = metrics_of(scored, base, enc, source, make_score)
        mean = {k: round((cv[0][k] + cv[1][k]) / 2, 4) for k in cv[0]}
        return mean, dev_m

    prior_weight = [0.75]

    def metrics_of(scored, base, enc, source, make_score):
        extra = [make_score(r, qvec[enc][r["id"]], source) for r in scored]
        fixed = [{**r, "x": np.hstack([r["x"], e[:, None]])} for r, e in zip(scored, extra,
                                                                            strict=True)]
        return metrics(fixed, lambda x: base(x[:, :-1]) + prior_weight[0] * x[:, prior_col]
                       + x[:, -1])

    results = {}

    def report(name, make_score):
        name = f"prior {prior_weight[0]}, {name}"
        cv, dv = judge(make_score)
        chosen_by = round(cv["R@5"] + cv["R@10"] + cv["MRR@10"], 4)
        results[name] = {"tune out of fold (2-fold CV)": cv, "dev": dv,
                         "R@5 + R@10 + MRR@10, out of fold": chosen_by}
        print(f"{name}: CV {cv} (sum {chosen_by})\n    dev {dv}", flush=True)

    caches: dict = {}
    for pw in PRIOR_WEIGHTS:
        prior_weight[0] = pw
        report("no vote", lambda r, v, s: np.zeros(len(r["keys"])))
        for k in KS:
            for tau in TAUS:
                cache = caches.setdefault((k, tau), {})

                def vote(r, v, s, k=k, tau=tau, cache=cache):
                    key = (r["id"], id(s))
                    if key not in cache:
                        cache[key] = votes(r, v, s, k, tau)
                    return cache[key]
                for w in WEIGHTS:
                    report(f"vote K={k} tau={tau} w={w}",
                           lambda r, v, s, w=w, vote=vote: w * vote(r, v, s))

    reach = {}
    for k in KS:
        for name, (scored, _base, enc, source) in zip(("tune fold 0", "tune fold 1", "dev"),
                                                      scored_sets, strict=True):
            golds = outside = found = 0
            for r in scored:
                near = neighbour_golds(r, qvec[enc][r["id"]], source, k)
                pool = set(r["keys"])
                for g in r["gold"]:
                    golds += 1
                    if g not in pool:
                        outside += 1
                        found += g in near
            reach[f"K={k} {name}"] = {"golds": golds, "outside the pool": outside,
                                      "of those among the neighbours' golds": found}
    print(json.dumps(reach, ensure_ascii=False, indent=1))
    results["reach"] = reach
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
