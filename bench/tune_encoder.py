"""Compare query-encoder training settings: dense Recall@10/@100 on the tune and dev parts.

    .venv/bin/python bench/tune_encoder.py --epochs 6 --lr 2e-4 --mix 0.4,0.6,0.8,1.0
    .venv/bin/python bench/tune_encoder.py --folds --scale 20,35,50 --mix 0.6,1.0

Trains one query encoder (legalrag.index.tune.fine_tune_queries, the code the index build runs)
on the tune part of the STARD file against the live index's article vectors, then mixes
its weights with the base model's at each --mix (1.0 = the trained weights as they are)
and measures dense retrieval alone over the in-force articles, fp32, for the tune
questions (seen in training) and the dev questions (never seen). The defaults of
legalrag.index.tune.TuneConfig were chosen with it; docs/evaluation.md gives the runs.

With --folds the tune numbers are out of fold instead: the tune part is split in the two
folds of bench/tune_fusion.py, an encoder is trained on each fold and judged on the other
(tune columns: both halves together), and the dev columns average the two encoders. Each
encoder learns half the questions, so the numbers sit below a full training's; what they
compare fairly is settings. --scale tries the softmax's scale (1 / temperature), --gold-loss
how a question's several gold articles are scored (legalrag.index.tune.gold_loss),
--freeze-embeddings trains with the word, position and type embeddings left as the base
model has them, and --seeds 42,43 trains one encoder per seed and averages their weights.

With --sizes 250,500,750,1000 it draws a learning curve instead: an encoder is trained on
the first N tune questions of one shuffle (--shuffle; each size holds the smaller ones), at
TuneConfig's settings, mixed at the first --mix (the product's is 0.8). The tune columns
are the tune questions it did not learn (none at the full size), the dev columns dev.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def recall(model, examples, docs) -> tuple[float, float]:
    q = model.encode([e.query for e in examples], normalize_embeddings=True, batch_size=64)
    return recall_of(q, examples, docs)


def recall_of(q, examples, docs) -> tuple[float, float]:
    """Dense Recall@10 and @100 of the question vectors q over the article vectors docs."""
    import numpy as np

    r10 = r100 = 0.0
    for e, s in zip(examples, q @ docs.T, strict=True):
        top = np.argpartition(-s, 100)[:100]
        top10 = set(top[np.argsort(-s[top])][:10].tolist())
        gold = set(e.gold_rows)
        r10 += len(gold & top10) / len(gold)
        r100 += len(gold & set(top.tolist())) / len(gold)
    return r10 / len(examples), r100 / len(examples)


def setup(queries: Path):
    """The live index's retriever, the STARD questions, the tune and dev examples, the
    in-force article vectors their gold rows index, and the base model's folder."""
    from legalrag.config import Settings
    from legalrag.index.embed import embedding_model_dir
    from legalrag.index.tune import load_questions, make_examples
    from legalrag.retrieval.retriever import Retriever

    retriever = Retriever.open(Settings.load(), verify=False)
    questions = load_questions(queries)
    tune, rows = make_examples(questions, retriever.articles, "tune")
    dev, _ = make_examples(questions, retriever.articles, "dev")
    docs = retriever.dense.reconstruct_n(0, retriever.dense.ntotal)[rows]
    return (retriever, questions, tune, dev, docs,
            embedding_model_dir(retriever.settings.embedding_model))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", default=str(ROOT / "data" / "eval" / "stard_train.jsonl"))
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--mix", default="1.0", help="comma-separated weight shares to measure")
    ap.add_argument("--scale", help="comma-separated softmax scales to train with "
                    "(default: TuneConfig's)")
    ap.add_argument("--gold-loss", choices=("sum", "each"),
                    help="how several gold articles of a question are scored (default: "
                    "TuneConfig's)")
    ap.add_argument("--freeze-embeddings", action="store_true",
                    help="train with the base model's embedding layer frozen")
    ap.add_argument("--seeds", default="42", help="comma-separated seeds; several are "
                    "trained and their weights averaged (a soup)")
    ap.add_argument("--folds", action="store_true",
                    help="train on one fold of the tune part, judge on the other")
    ap.add_argument("--sizes", help="comma-separated numbers of tune questions to train on "
                    "(a learning curve)")
    ap.add_argument("--shuffle", type=int, default=0, help="the seed of the shuffle --sizes "
                    "draws its questions by")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from legalrag.index.tune import TuneConfig, fine_tune_queries, make_examples

    retriever, questions, tune, dev, docs, base_path = setup(Path(args.queries))
    config = TuneConfig()
    config = replace(config, epochs=args.epochs or config.epochs,
                     learning_rate=args.lr or config.learning_rate, mix=1.0,
                     gold_loss=args.gold_loss or config.gold_loss)
    seeds = [int(x) for x in args.seeds.split(",")]
    scales = [float(x) for x in args.scale.split(",")] if args.scale else [config.scale]
    mixes = [float(m) for m in args.mix.split(",")]
    what = ("tune out of fold" if args.folds else "tune not learned" if args.sizes
            else "tune")
    print(f"| encoder | {what} R@10 | {what} R@100 | dev R@10 | dev R@100 |")
    print("|---|---|---|---|---|")
    base = SentenceTransformer(str(base_path), device="cpu")
    base.max_seq_length = config.max_length
    start = {k: v.clone() for k, v in base.state_dict().items()}
    (t10, t100), (d10, d100) = recall(base, tune, docs), recall(base, dev, docs)
    print(f"| base | {t10:.3f} | {t100:.3f} | {d10:.3f} | {d100:.3f} |", flush=True)
    if args.folds:
        from tune_fusion import fold_of

        halves = [make_examples([q for q in questions if fold_of(q["id"]) == f],
                                retriever.articles, "tune")[0] for f in (0, 1)]
        runs = [(halves[1 - f], [halves[f]]) for f in (0, 1)]  # (train, judged out of fold)
    elif args.sizes:
        import random

        order = list(range(len(tune)))
        random.Random(args.shuffle).shuffle(order)
        runs = [([tune[i] for i in order[:n]], [[tune[i] for i in order[n:]]])
                for n in (int(x) for x in args.sizes.split(","))]
    else:
        runs = [(tune, [tune])]
    for scale in scales:
        trained = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, (train_on, _) in enumerate(runs):
                states = []
                for seed in seeds:
                    t0 = time.perf_counter()
                    fine_tune_queries(base_path, train_on, docs, Path(tmp) / f"q{i}-{seed}",
                                      replace(config, scale=scale, seed=seed),
                                      frozen=".embeddings." if args.freeze_embeddings else "")
                    print(f"trained {len(train_on)} questions in "
                          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
                    states.append(SentenceTransformer(str(Path(tmp) / f"q{i}-{seed}"),
                                                      device="cpu").state_dict())
                trained.append({k: sum(s[k] for s in states) / len(states)
                                if v.is_floating_point() else v
                                for k, v in states[0].items()})
        if args.sizes:
            for state, (train_on, (rest,)) in zip(trained, runs, strict=True):
                base.load_state_dict({k: mixes[0] * v + (1 - mixes[0]) * start[k]
                                      if v.is_floating_point() else v
                                      for k, v in state.items()})
                r10, r100 = recall(base, rest, docs) if rest else (float("nan"),) * 2
                d10, d100 = recall(base, dev, docs)
                print(f"| {len(train_on)} tune questions, {len(rest)} not learned | "
                      f"{r10:.3f} | {r100:.3f} | {d10:.3f} | {d100:.3f} |", flush=True)
            continue
        for mix in mixes:
            seen = judged = 0
            t10 = t100 = d10 = d100 = 0.0
            for state, (_, judge_on) in zip(trained, runs, strict=True):
                base.load_state_dict({k: mix * v + (1 - mix) * start[k]
                                      if v.is_floating_point() else v
                                      for k, v in state.items()})
                for part in judge_on:
                    r10, r100 = recall(base, part, docs)
                    t10, t100, seen = t10 + r10 * len(part), t100 + r100 * len(part), \
                        seen + len(part)
                r10, r100 = recall(base, dev, docs)
                d10, d100, judged = d10 + r10, d100 + r100, judged + 1
            print(f"| lr {config.learning_rate:g} × {config.epochs} epochs, scale {scale:g}, "
                  f"{config.gold_loss} loss, seeds {args.seeds}"
                  f"{', frozen embeddings' if args.freeze_embeddings else ''}, mix {mix:g} | "
                  f"{t10 / seen:.3f} | "
                  f"{t100 / seen:.3f} | {d10 / judged:.3f} | {d100 / judged:.3f} |", flush=True)


if __name__ == "__main__":
    main()
