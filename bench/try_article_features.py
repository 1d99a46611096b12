"""Features of the article itself, from the corpus alone, for the reranker: chosen out of
fold.

    .venv/bin/python bench/try_article_features.py --cache POOLS [--out FILE]
    .venv/bin/python bench/try_article_features.py --encoders DIR --product 0 0.3 [--out FILE]

POOLS is the pickle bench/try_rerankers.py --cache writes (made there with --encoders if
missing). The reranker's features say how well a candidate matches the question and how its
law fares; the article prior says how often tune questions needed it. Nothing says what
kind of article it is. These do, from the corpus and never from the questions, so they
reach the articles no tune question needed as well:

- indeg: log(1 + how many in-force articles cite it) (the build's CrossRefs: 依照本法第X条
  and the like). A rule other articles point to is a rule questions reach;
- outdeg: log(1 + how many articles it cites);
- len: the log of its length in characters;
- first2: whether it is 第一条 or 第二条 (purpose and scope, rarely a question's answer);
- relpos: its number over the highest number of its law.

Each is tried as a feature of the linear model (retrained, the product's recipe), the
article prior added at the product's weight; indeg also added to the score with a fixed
weight. Judged as bench/try_rerankers.py judges: two folds of the tune part, each fold's
out-of-fold pools scored by a reranker trained on the other fold; dev reported beside,
never used to choose. Recall is reported at 5 to 100: the cross-encoder reorders the best
20, so Recall@20 is what it has to work with.

With --product, w * indeg is added to the article prior inside the product's own search
(no retraining: it is added to the score, as the prior is), dev as shipped and the tune
part out of fold through the fold encoders without the cross-encoder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

NAMES = ("indeg", "outdeg", "len", "first2", "relpos")
KS = (5, 10, 20, 30, 50, 100)
WEIGHTS = (0.1, 0.2, 0.3, 0.5)


def article_columns(retriever) -> dict[tuple, list[float]]:
    """key -> NAMES, for every in-force article."""
    arts, inf, refs = retriever.articles, retriever.in_force, retriever.cross_refs
    indeg = {key: sum(1 for r in rows if inf[r]) for key, rows in refs.reverse.items()}
    outdeg = {(arts[r].law, arts[r].number, arts[r].suffix): len(keys)
              for r, keys in refs.forward.items()}
    top: dict[str, int] = defaultdict(int)
    for i, a in enumerate(arts):
        if inf[i]:
            top[a.law] = max(top[a.law], a.number)
    out = {}
    for i, a in enumerate(arts):
        if inf[i]:
            key = (a.law, a.number, a.suffix)
            out[key] = [math.log1p(indeg.get(key, 0)), math.log1p(outdeg.get(key, 0)),
                        math.log(max(len(a.text), 1)), float(a.number <= 2),
                        a.number / max(top[a.law], 1)]
    return out


def product_check(args, weights: list[float]) -> dict:
    """w * indeg added to the article prior inside the product's own search, at each weight:
    dev as shipped (cross-encoder and cross-references on), and the tune part out of fold
    through the fold encoders (with their own article priors; cross-encoder off, as it
    learned the tune questions)."""
    from dataclasses import replace

    from tune_fusion import fold_of

    from legalrag.config import Settings
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import load_queries, run_eval
    from legalrag.retrieval.retriever import Retriever

    queries = load_queries(args.queries)
    settings = Settings.load()
    product = Retriever.open(settings, verify=False)
    parts = [("dev", [q for q in queries if split_of(q.id) == "dev"], product)]
    for fold in (0, 1):
        parts.append((f"tune fold {fold}",
                      [q for q in queries if split_of(q.id) == "tune" and fold_of(q.id) == fold],
                      Retriever(product.build_dir,
                                replace(settings, cross_encoder="",
                                        query_encoder=str(args.encoders / f"fold{fold}")),
                                verify=False)))
    out: dict = {}
    for name, part, retriever in parts:
        columns = article_columns(retriever)
        indeg = np.array([columns.get((a.law, a.number, a.suffix), [0.0])[0]
                          for a in retriever.articles])
        prior = retriever.article_prior.copy()
        for w in weights:
            retriever.article_prior = prior + w * indeg
            agg = run_eval(retriever, part, modes=["hybrid"],
                           ks=[5, 10, 20, 100]).aggregate["hybrid"]
            out.setdefault(f"{w} x indeg", {})[name] = {
                "questions": len(part), **{k: round(agg[k], 4) for k in
                                           ("recall@5", "recall@10", "recall@20", "recall@100",
                                            "mrr@10")}}
            print(w, name, out[f"{w} x indeg"][name], flush=True)
    for row in out.values():
        n0, n1 = row["tune fold 0"]["questions"], row["tune fold 1"]["questions"]
        row["tune out of fold"] = {k: round((row["tune fold 0"][k] * n0
                                             + row["tune fold 1"][k] * n1) / (n0 + n1), 4)
                                   for k in row["dev"] if k != "questions"}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--encoders", type=Path, help="fold encoders, to make POOLS if missing")
    ap.add_argument("--cache", type=Path, help="the pools of bench/try_rerankers.py --cache")
    ap.add_argument("--product", type=float, nargs="+", metavar="W",
                    help="add W x indeg to the article prior in the product's own search "
                         "(needs --encoders)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.product:
        if not args.encoders:
            ap.error("--product needs --encoders (the fold encoders)")
        results = product_check(args, args.product)
        if args.out:
            args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n",
                                encoding="utf-8")
        return 0
    if not args.cache:
        ap.error("give --cache POOLS, or --product W ...")
    from try_rerankers import EXTRA, collect, linear, with_prior

    from legalrag.config import Settings
    from legalrag.retrieval.rerank import FEATURES
    from legalrag.retrieval.retriever import Retriever

    if args.cache.exists():
        rows = pickle.loads(args.cache.read_bytes())
    else:
        if not args.encoders:
            ap.error("POOLS is missing: give --encoders to make it")
        questions = [json.loads(x) for x in
                     args.queries.read_text(encoding="utf-8").splitlines() if x.strip()]
        rows = collect(questions, args.encoders)
        args.cache.write_bytes(pickle.dumps(rows))
    retriever = Retriever.open(Settings.load(), verify=False)
    columns = article_columns(retriever)
    blank = [0.0] * len(NAMES)
    rows = [{**r, "x": np.hstack([r["x"], np.array([columns.get(k, blank)
                                                    for k in r["keys"]])])} for r in rows]
    width = len(FEATURES) + len(EXTRA)
    col = {n: width + i for i, n in enumerate(NAMES)}
    prior_col = width + len(NAMES)  # with_prior appends prior, prior_seen, cogold
    weight = retriever.settings.article_prior
    product = list(range(len(FEATURES)))
    train = [r for r in rows if r["kind"] in ("in", "oof")]
    dev = [r for r in rows if r["kind"] == "dev"]
    sets = []
    for fold in (0, 1):
        source = [r for r in train if r["fold"] != fold]
        sets.append((with_prior(source, source),
                     with_prior([r for r in train if r["fold"] == fold and r["kind"] == "oof"],
                                source)))
    sets.append((with_prior(train, train), with_prior(dev, train)))

    def measure(rows_scored, score) -> dict[str, float]:
        m: Counter = Counter()
        for r in rows_scored:
            y = r["y"][np.argsort(-score(r["x"]), kind="stable")]
            for k in KS:
                m[f"R@{k}"] += min(1.0, y[:k].sum() / r["n"])
            first = np.flatnonzero(y[:10])
            m["MRR@10"] += 1.0 / (first[0] + 1) if len(first) else 0.0
        return {k: round(float(v) / len(rows_scored), 4) for k, v in m.items()}

    results = {}

    def judge(name: str, cols: list[int], added: int | None = None, w: float = 0.0) -> None:
        parts = []
        for trained, scored in sets:
            f = linear(cols)(trained)
            parts.append(measure(scored, lambda x, f=f: f(x) + weight * x[:, prior_col]
                                 + (w * x[:, added] if added is not None else 0.0)))
        cv = {k: round((parts[0][k] + parts[1][k]) / 2, 4) for k in parts[0]}
        chosen_by = round(cv["R@5"] + cv["R@10"] + cv["MRR@10"], 4)
        results[name] = {"tune out of fold (2-fold CV)": cv, "dev": parts[2],
                         "R@5 + R@10 + MRR@10, out of fold": chosen_by}
        print(f"{name}: CV {cv} (sum {chosen_by})\n    dev {parts[2]}", flush=True)

    judge("product (linear + article prior)", product)
    for name in NAMES:
        judge(f"+ {name} as a feature", [*product, col[name]])
    judge("+ all five as features", [*product, *col.values()])
    for w in WEIGHTS:
        judge(f"+ {w} x indeg added", product, col["indeg"], w)
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
