"""Try reranker variants offline: more features and a non-linear model, chosen out of fold.

    LEGALRAG_INDEX_DIR=... .venv/bin/python bench/try_rerankers.py --encoders DIR \
        [--cache FILE] [--out FILE]

Every question's candidate pool (the best 300 of BM25 and of dense, as the product builds it)
is collected once, with the product's reranker features and these extra ones:

- base, base_gap: the cosine of the question through the *base* embedding model (the one
  that embedded the articles) and how far it is behind the pool's best. The tuned query
  encoder learned 1,000 questions; the base model learned none, so it errs differently;
- prf, prf_gap: the cosine to the mean of the five best articles by the tuned cosine
  (pseudo-relevance feedback in vector space): an article like the consensus of the top.

- prior, prior_seen: how many tune questions have the candidate as a gold article (log(1 + n))
  and whether any has; cogold: how often it is gold beside one of the five best articles by
  cosine. Counted over the training questions only, each leaving itself out (with_prior),
  and tried both as a feature and added to the linear model's score with a fixed weight
  (as the product's setting article_prior does).

- listwise: the product's linear model fitted per question instead of per candidate (each
  gold candidate against the pool's non-gold ones), the objective a ranking is judged by.

Pools come three ways: tune questions through the index's encoder (it learned them: "in
sample"), tune questions through an encoder trained on the other half of the tune part
(bench/tune_fusion.py's fold encoders: "out of fold"), and dev questions through the index's
encoder (as the product will see a new question).

A variant is judged by two-fold cross-validation on the tune part: trained on one fold's
pools (in sample and out of fold, as the product's reranker is), scored on the *other*
fold's out-of-fold pools, which no encoder or reranker has seen. Dev is reported beside and
never used to choose.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

EXTRA = ("base", "base_gap", "prf", "prf_gap")
PRIOR = ("prior", "prior_seen", "cogold")
PRF_TOP = 5
PRIOR_WEIGHTS = (0.25, 0.5, 0.75, 1.0, 1.5)


def distinct(rows: list[dict]) -> list[dict]:
    """Each question's first row: a tune question has an in-sample and an out-of-fold pool."""
    seen: set = set()
    return [r for r in rows if not (r["id"] in seen or seen.add(r["id"]))]


def with_prior(rows: list[dict], source: list[dict]) -> list[dict]:
    """rows with the PRIOR columns, counted over the source questions' gold articles:
    log(1 + how many have the candidate as a gold article), whether any has, and
    log(1 + how often the candidate is a gold article beside one of the five best articles
    by cosine). A question never counts itself (leave one out), so a training pool's gold
    articles look as they will for a new question."""
    from legalrag.retrieval.rerank import FEATURES

    counts: Counter = Counter()
    pairs: Counter = Counter()
    once = distinct(source)
    seen = {r["id"] for r in once}
    for r in once:
        counts.update(r["gold"])
        pairs.update((a, b) for a in r["gold"] for b in r["gold"] if a != b)
    dense = FEATURES.index("dense")
    out = []
    for r in rows:
        own = r["id"] in seen
        n = np.array([counts.get(k, 0) for k in r["keys"]], dtype=np.float64)
        if own:
            n -= np.array([k in r["gold"] for k in r["keys"]], dtype=np.float64)
        top = [r["keys"][j] for j in np.argsort(-r["x"][:, dense], kind="stable")[:PRF_TOP]]
        co = np.zeros(len(r["keys"]))
        for j, k in enumerate(r["keys"]):
            for t in top:
                if t != k:
                    c = pairs.get((t, k), 0)
                    if own and t in r["gold"] and k in r["gold"]:
                        c -= 1
                    co[j] += c
        out.append({**r, "x": np.hstack([r["x"], np.log1p(n)[:, None], (n > 0)[:, None],
                                         np.log1p(co)[:, None]])})
    return out


def extras(pool, vectors: np.ndarray, base_vec: np.ndarray) -> np.ndarray:
    v = vectors[np.asarray(pool.ids, dtype=np.int64)]
    base = v @ base_vec
    dense = np.asarray(pool.dense)
    top = np.argsort(-dense, kind="stable")[:PRF_TOP]
    centroid = v[top].mean(0)
    centroid /= np.linalg.norm(centroid) or 1.0
    prf = v @ centroid
    return np.stack([base, base.max() - base, prf, prf.max() - prf], axis=1)


def collect(questions: list[dict], encoders: Path) -> list[dict]:
    from tune_fusion import fold_encoders, fold_of, gold_keys

    from legalrag.config import Settings
    from legalrag.index.embed import load_embedder
    from legalrag.index.tune import split_of
    from legalrag.retrieval.rerank import features
    from legalrag.retrieval.retriever import Retriever

    settings = Settings.load()
    product = Retriever.open(settings)
    vectors = product.dense.reconstruct_n(0, product.dense.ntotal)
    keys = [(a.law, a.number, a.suffix) for a in product.articles]
    base = load_embedder(settings).encode
    folds = [Retriever(product.build_dir, replace(product.settings, query_encoder=str(p)),
                       verify=False, fusion=product.fusion)
             for p in fold_encoders(product, questions, encoders)]
    rows = []
    t0 = time.perf_counter()
    for i, q in enumerate(questions):
        part = split_of(q["id"])
        gold = gold_keys(product, q["relevant"])
        base_vec = base([q["query"]])[0]
        runs = [("in" if part == "tune" else "dev", product)]
        if part == "tune":
            runs.append(("oof", folds[fold_of(q["id"])]))
        for kind, r in runs:
            vec = r.embedder.encode([q["query"]])
            rankings, raw = r.candidates(q["query"], 300, vec=vec)
            pool = r.pool(q["query"], rankings, raw, vec)
            x = np.hstack([features(pool, r.meta, q["query"]), extras(pool, vectors, base_vec)])
            rows.append({"id": q["id"], "kind": kind, "fold": fold_of(q["id"]), "x": x,
                         "y": np.array([keys[d] in gold for d in pool.ids]),
                         "n": len(q["relevant"]), "keys": [keys[d] for d in pool.ids],
                         "gold": gold})
        if (i + 1) % 100 == 0:
            print(f"{i + 1} questions, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return rows


def fold_sets(rows: list[dict]) -> list[tuple[list[dict], list[dict]]]:
    """(training rows, rows scored), with the prior columns: fold 0 and fold 1 of the tune
    part (trained on the other fold, scored on this fold's out-of-fold pools), then all
    tune pools and dev."""
    train = [r for r in rows if r["kind"] in ("in", "oof")]
    dev = [r for r in rows if r["kind"] == "dev"]
    sets = []
    for fold in (0, 1):
        source = [r for r in train if r["fold"] != fold]
        sets.append((with_prior(source, source),
                     with_prior([r for r in train if r["fold"] == fold
                                 and r["kind"] == "oof"], source)))
    sets.append((with_prior(train, train), with_prior(dev, train)))
    return sets


def metrics(rows, scorer) -> dict[str, float]:
    out = {"R@5": 0.0, "R@10": 0.0, "R@100": 0.0, "Hit@5": 0.0, "MRR@10": 0.0}
    for r in rows:
        order = np.argsort(-scorer(r["x"]), kind="stable")
        y = r["y"][order]
        out["R@5"] += min(1.0, y[:5].sum() / r["n"])
        out["R@10"] += min(1.0, y[:10].sum() / r["n"])
        out["R@100"] += min(1.0, y[:100].sum() / r["n"])
        out["Hit@5"] += float(y[:5].any())
        first = np.flatnonzero(y[:10])
        out["MRR@10"] += 1.0 / (first[0] + 1) if len(first) else 0.0
    return {k: round(float(v) / len(rows), 4) for k, v in out.items()}


def linear(cols):
    from legalrag.retrieval.rerank import train

    def fit(rows):
        model = train([(r["x"][:, cols], r["y"]) for r in rows])
        return lambda x: model.score(x[:, cols])
    return fit


def train_listwise(pools, *, steps: int = 300, lr: float = 0.05, l2: float = 1e-3):
    """The product's linear model fitted listwise instead: in each question's pool, every
    gold candidate against the non-gold ones (softplus(logsumexp(non-gold) − gold)),
    averaged over the question's golds, then over the questions. Full-batch Adam from zero
    over padded pools, so deterministic; the same standardization as rerank.train."""
    from legalrag.retrieval.rerank import Reranker

    pools = [(x, y.astype(bool)) for x, y in pools if y.any()]
    width = max(len(y) for _, y in pools)
    x_all = np.concatenate([x for x, _ in pools])
    mean, scale = x_all.mean(0), x_all.std(0)
    scale[scale < 1e-9] = 1.0
    feats = np.zeros((len(pools), width, x_all.shape[1]))
    gold = np.zeros((len(pools), width), dtype=bool)
    real = np.zeros((len(pools), width), dtype=bool)
    for i, (x, y) in enumerate(pools):
        feats[i, :len(y)] = (x - mean) / scale
        gold[i, :len(y)] = y
        real[i, :len(y)] = True
    rest = real & ~gold
    per_q = 1.0 / gold.sum(1) / len(pools)  # each question weighs the same
    w = np.zeros(x_all.shape[1])
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t in range(1, steps + 1):
        s = feats @ w
        s_rest = np.where(rest, s, -np.inf)
        top = s_rest.max(1, keepdims=True)
        e = np.exp(s_rest - top)
        lse = top[:, 0] + np.log(e.sum(1))
        soft = e / e.sum(1, keepdims=True)  # softmax over the non-gold candidates
        sig = 1.0 / (1.0 + np.exp(-(lse[:, None] - s)))  # d loss_g / d lse, per gold g
        sig = np.where(gold, sig, 0.0) * per_q[:, None]
        ds = -sig + soft * sig.sum(1, keepdims=True)
        grad = np.einsum("qp,qpf->f", ds, feats) + l2 * w
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        w -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return Reranker(mean, scale, w)


def listwise(cols, **params):
    def fit(rows):
        model = train_listwise([(r["x"][:, cols], r["y"]) for r in rows], **params)
        return lambda x: model.score(x[:, cols])
    return fit


def plus_prior(cols, prior: int, weight: float):
    """The linear model over cols, then weight * the prior column added to its score (as
    the product adds settings.article_prior)."""
    def fit(rows):
        scorer = linear(cols)(rows)
        return lambda x: scorer(x) + weight * x[:, prior]
    return fit


def boosted(cols, **params):
    def fit(rows):
        from sklearn.ensemble import HistGradientBoostingClassifier

        x = np.concatenate([r["x"][:, cols] for r in rows])
        y = np.concatenate([r["y"] for r in rows])
        w = np.where(y, (len(y) - y.sum()) / max(1, y.sum()), 1.0)
        model = HistGradientBoostingClassifier(random_state=0, **params)
        model.fit(x, y, sample_weight=w)
        return lambda xx: model.decision_function(xx[:, cols])
    return fit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--encoders", type=Path, required=True,
                    help="the two fold encoders (trained here once if missing)")
    ap.add_argument("--cache", type=Path, help="keep the pools here (pickle)")
    ap.add_argument("--out", type=Path, help="write the results here (JSON)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from legalrag.retrieval.rerank import FEATURES

    if args.cache and args.cache.exists():
        rows = pickle.loads(args.cache.read_bytes())
    else:
        questions = [json.loads(x) for x in args.queries.read_text(encoding="utf-8").splitlines()
                     if x.strip()]
        rows = collect(questions, args.encoders)
        if args.cache:
            args.cache.write_bytes(pickle.dumps(rows))
    names = (*FEATURES, *EXTRA, *PRIOR)
    product = list(range(len(FEATURES)))
    col = {n: i for i, n in enumerate(names)}
    variants = {
        "linear, product features": linear(product),
        "linear + base": linear([*product, col["base"], col["base_gap"]]),
        "linear + prf": linear([*product, col["prf"], col["prf_gap"]]),
        "linear + base + prf": linear([col[n] for n in (*FEATURES, *EXTRA)]),
        "linear + prior": linear([*product, col["prior"]]),
        "linear + prior + seen": linear([*product, col["prior"], col["prior_seen"]]),
        "linear + cogold": linear([*product, col["cogold"]]),
        "linear + prior + cogold": linear([*product, col["prior"], col["cogold"]]),
        **{f"linear, then {w} x prior added": plus_prior(product, col["prior"], w)
           for w in PRIOR_WEIGHTS},
        **{f"linear, then {w} x cogold added": plus_prior(product, col["cogold"], w)
           for w in PRIOR_WEIGHTS},
        "listwise, product features": listwise(product),
        "listwise, product features, 1000 steps": listwise(product, steps=1000),
        "listwise + prior": listwise([*product, col["prior"]]),
        "boosted, product features": boosted(product, max_iter=200, learning_rate=0.05,
                                             max_leaf_nodes=15, min_samples_leaf=200),
        "boosted + base + prf": boosted([col[n] for n in (*FEATURES, *EXTRA)], max_iter=200,
                                        learning_rate=0.05, max_leaf_nodes=15,
                                        min_samples_leaf=200),
    }
    sets = fold_sets(rows)
    results = {}
    for name, fit in variants.items():
        t0 = time.perf_counter()
        cv = [metrics(scored, fit(trained)) for trained, scored in sets[:2]]
        cv_mean = {k: round((cv[0][k] + cv[1][k]) / 2, 4) for k in cv[0]}
        trained, scored = sets[2]
        results[name] = {"tune out of fold (2-fold CV)": cv_mean,
                         "dev": metrics(scored, fit(trained)),
                         "seconds": round(time.perf_counter() - t0, 1)}
        chosen_by = round(cv_mean["R@5"] + cv_mean["R@10"] + cv_mean["MRR@10"], 4)
        results[name]["R@5 + R@10 + MRR@10, out of fold"] = chosen_by
        print(f"{name}: CV {cv_mean} (sum {chosen_by})\n    dev {results[name]['dev']}",
              flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
