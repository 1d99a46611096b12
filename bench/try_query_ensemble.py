"""Several query encoders, their question vectors averaged: judged out of fold.

    .venv/bin/python bench/try_query_ensemble.py [--seeds 42,43,44] [--out FILE]

Three trainings of the query encoder on the same 996 tune questions differ by 2 points of
dev dense Recall@10 (bench/tune_encoder.py --sizes). The variance of one training is what
an ensemble removes. The two-seed soup (weights averaged) did not gain out of fold. This
tries the other kind of ensemble: each encoder embeds the question, and the normalized
vectors are averaged. It costs one more question embedding per member at query time and
one more training per member in the build.

As in bench/tune_encoder.py --folds: the tune part is split in the two folds of
bench/tune_fusion.py, encoders are trained on one fold (one per seed, the product's
settings and mix) and judged on the other, by dense retrieval alone, fp32, over the
in-force articles. Reported: each seed alone, and the ensemble of the first n seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def averaged(vectors: list[np.ndarray]) -> np.ndarray:
    v = np.mean(vectors, axis=0)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", default=str(ROOT / "data" / "eval" / "stard_train.jsonl"))
    ap.add_argument("--seeds", default="42,43,44")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from tune_encoder import recall_of as recall
    from tune_encoder import setup
    from tune_fusion import fold_of

    from legalrag.index.tune import TuneConfig, fine_tune_queries, make_examples

    retriever, questions, _, dev, docs, base_path = setup(Path(args.queries))
    config = TuneConfig()
    seeds = [int(x) for x in args.seeds.split(",")]
    halves = [make_examples([q for q in questions if fold_of(q["id"]) == f],
                            retriever.articles, "tune")[0] for f in (0, 1)]
    # vectors[fold][seed] = (question vectors of the other fold, of dev)
    vectors: list[list[tuple[np.ndarray, np.ndarray]]] = [[], []]
    with tempfile.TemporaryDirectory() as tmp:
        for f in (0, 1):
            train_on, judged = halves[1 - f], halves[f]
            for seed in seeds:
                t0 = time.perf_counter()
                out = Path(tmp) / f"f{f}-{seed}"
                fine_tune_queries(base_path, train_on, docs, out, replace(config, seed=seed))
                model = SentenceTransformer(str(out), device="cpu")
                vectors[f].append(tuple(
                    model.encode([e.query for e in part], normalize_embeddings=True,
                                 batch_size=64) for part in (judged, dev)))
                print(f"fold {f}, seed {seed}: trained in {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr, flush=True)
    results = {}

    def judge(name: str, pick) -> None:
        t10 = t100 = d10 = d100 = 0.0
        for f in (0, 1):
            q_tune, q_dev = pick(vectors[f])
            r10, r100 = recall(q_tune, halves[f], docs)
            t10, t100 = t10 + r10 * len(halves[f]), t100 + r100 * len(halves[f])
            r10, r100 = recall(q_dev, dev, docs)
            d10, d100 = d10 + r10 / 2, d100 + r100 / 2
        n = len(halves[0]) + len(halves[1])
        results[name] = {"tune out of fold R@10": round(t10 / n, 4),
                         "tune out of fold R@100": round(t100 / n, 4),
                         "dev R@10": round(d10, 4), "dev R@100": round(d100, 4)}
        print(f"| {name} | {t10 / n:.3f} / {t100 / n:.3f} | {d10:.3f} / {d100:.3f} |",
              flush=True)

    print("| query encoder(s), each trained on half the tune part | tune out of fold "
          "R@10 / R@100 | dev R@10 / R@100 |\n|---|---|---|")
    for i, seed in enumerate(seeds):
        judge(f"seed {seed} alone", lambda vs, i=i: vs[i])
    for n in range(2, len(seeds) + 1):
        judge(f"ensemble of seeds {','.join(map(str, seeds[:n]))}",
              lambda vs, n=n: tuple(averaged([v[k] for v in vs[:n]]) for k in (0, 1)))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
