"""Compare query-encoder training settings: dense Recall@10/@100 on the tune and dev parts.

    .venv/bin/python bench/tune_encoder.py --epochs 6 --lr 2e-4 --mix 0.4,0.6,0.8,1.0

Trains one query encoder (legalrag.index.tune.fine_tune_queries, the code the index build runs)
on the tune part of the STARD file against the live index's article vectors, then mixes
its weights with the base model's at each --mix (1.0 = the trained weights as they are)
and measures dense retrieval alone over the in-force articles, fp32, for the tune
questions (seen in training) and the dev questions (never seen). The defaults of
legalrag.index.tune.TuneConfig were chosen with it; docs/evaluation.md gives the runs.
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


def recall(model, examples, docs) -> tuple[float, float]:
    import numpy as np

    q = model.encode([e.query for e in examples], normalize_embeddings=True, batch_size=64)
    r10 = r100 = 0.0
    for e, s in zip(examples, q @ docs.T, strict=True):
        top = np.argpartition(-s, 100)[:100]
        top10 = set(top[np.argsort(-s[top])][:10].tolist())
        gold = set(e.gold_rows)
        r10 += len(gold & top10) / len(gold)
        r100 += len(gold & set(top.tolist())) / len(gold)
    return r10 / len(examples), r100 / len(examples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", default=str(ROOT / "data" / "eval" / "stard_train.jsonl"))
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--mix", default="1.0", help="comma-separated weight shares to measure")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from legalrag.config import Settings
    from legalrag.index.embed import embedding_model_dir
    from legalrag.index.tune import TuneConfig, fine_tune_queries, load_questions, make_examples
    from legalrag.retrieval.retriever import Retriever

    retriever = Retriever.open(Settings.load(), verify=False)
    questions = load_questions(Path(args.queries))
    tune, rows = make_examples(questions, retriever.articles, "tune")
    dev, _ = make_examples(questions, retriever.articles, "dev")
    docs = retriever.dense.reconstruct_n(0, retriever.dense.ntotal)[rows]
    config = TuneConfig()
    config = replace(config, epochs=args.epochs or config.epochs,
                     learning_rate=args.lr or config.learning_rate, mix=1.0)
    base_path = embedding_model_dir(retriever.settings.embedding_model)
    print("| encoder | tune R@10 | tune R@100 | dev R@10 | dev R@100 |")
    print("|---|---|---|---|---|")
    base = SentenceTransformer(str(base_path), device="cpu")
    base.max_seq_length = config.max_length
    (t10, t100), (d10, d100) = recall(base, tune, docs), recall(base, dev, docs)
    print(f"| base | {t10:.3f} | {t100:.3f} | {d10:.3f} | {d100:.3f} |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        fine_tune_queries(base_path, tune, docs, Path(tmp) / "q", config)
        print(f"trained {len(tune)} questions in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
        trained = SentenceTransformer(str(Path(tmp) / "q"), device="cpu").state_dict()
    start = {k: v.clone() for k, v in base.state_dict().items()}
    for mix in (float(m) for m in args.mix.split(",")):
        base.load_state_dict({k: mix * v + (1 - mix) * start[k] if v.is_floating_point() else v
                              for k, v in trained.items()})
        (t10, t100), (d10, d100) = recall(base, tune, docs), recall(base, dev, docs)
        print(f"| lr {config.learning_rate:g} × {config.epochs} epochs, mix {mix:g} | "
              f"{t10:.3f} | {t100:.3f} | {d10:.3f} | {d100:.3f} |", flush=True)


if __name__ == "__main__":
    main()
