"""Should the cross-encoder help choose the quoted provision? Tuned on the STARD tune part
out of fold, dev reported beside (issue 12). No chat model runs.

    .venv/bin/python bench/tune_provision_cross.py --encoders DIR --provisions FILE \
        [--hits FILE] [--scores FILE] [--out FILE]

The provision (the paragraph quoted before the model speaks) is chosen by the passage score
of legalrag.answer.provision: the cosine of question and paragraph plus the share of the
question's bigrams it holds, discounted per retrieval rank. The cross-encoder of the
retrieval stage (retrieval/cross.py) reads the question and a text together; here it reads
each paragraph as it reads an article (the article's label, a line break, the paragraph),
and its score, through a logistic, is added with a weight c:

    (cosine + BIGRAM_WEIGHT * bigram share + c * sigmoid(cross-encoder)) * RANK_DECAY ** rank

The shipped cross-encoder was trained on all 1,000 tune questions, so it cannot score their
paragraphs honestly. Here two cross-encoders are trained as bench/train_cross_oof.py trains
its folds (the shipped file's settings: 2 layers, 128 tokens, 2 epochs), each on the tune
questions of one half (tune_fusion.fold_of), and each scores the paragraphs of the other
half's questions. Those questions are retrieved by the fold query encoder that never saw
them (bench/tune_provision.py --encoders, whose cache --provisions reads or writes). Dev
paragraphs are scored by the shipped file on ONNX Runtime, as the product would.

The grid's objective is tune_provision.py's: the share of tune questions with a gold article
quoted, less 0.1 per quoted article. Dev is never used to choose.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from argparse import Namespace
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def paragraph_articles(retriever, row: dict) -> list:
    """The passages of row (tune_provision.collect's features, in order) as articles whose
    text is the passage: what the cross-encoder reads for each."""
    from legalrag.answer.provision import split_passages

    keys: list[tuple] = []
    for rank, key, *_ in row["passages"]:
        if not keys or keys[-1] != (rank, key):
            keys.append((rank, key))
    out = []
    for _, key in keys:
        article = next(a for a in retriever.lookup(*key) if a.in_force)
        out += [replace(article, text=p.lead + p.text) for p in split_passages(article)]
    if len(out) != len(row["passages"]):
        raise SystemExit(f"{row['id']}: {len(out)} passages now, {len(row['passages'])} "
                         "in the cache: the index changed, remove --provisions and rerun")
    return out


def score_passages(provisions: list[dict], hits: list[dict], queries: dict[str, str]
                   ) -> dict[str, list[float]]:
    """Cross-encoder scores of every passage: tune questions by the fold model that did not
    train on them, dev questions by the shipped file."""
    import torch
    from train_cross_oof import config, fit
    from transformers import AutoTokenizer
    from tune_fusion import fold_of

    from legalrag.config import Settings
    from legalrag.index.embed import embedding_model_dir
    from legalrag.retrieval.cross import pair_texts
    from legalrag.retrieval.retriever import Retriever

    torch.set_num_threads(2)
    product = Retriever.open(Settings.load())
    args = Namespace(max_len=product.cross.config.max_len, layers=product.cross.config.layers,
                     passages=False, headings=False, depth=[20], epochs=2, negatives=7,
                     lr=5e-5)
    tok = AutoTokenizer.from_pretrained(str(embedding_model_dir("m3e-small")))
    out: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    tune = [r for r in hits if r["part"] == "tune"]
    for fold in (0, 1):
        model = fit([r for r in tune if r["fold"] != fold], args, seed=fold)
        print(f"fold {fold} trained, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        with torch.inference_mode():
            for row in provisions:
                if row["part"] != "tune" or fold_of(row["id"]) != fold:
                    continue
                q = queries[row["id"]]
                texts = pair_texts(tok, config(args), q, paragraph_articles(product, row))
                out[row["id"]] = model.scores(q, texts).tolist() if texts else []
    for row in provisions:
        if row["part"] == "dev":
            q = queries[row["id"]]
            arts = paragraph_articles(product, row)
            out[row["id"]] = product.cross.scores(q, product.cross.texts(q, arts)).tolist()
    print(f"passages scored, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return out


def choose(feats, ce, weight: float, decay: float, top: int, second: float,
           c: float) -> list[tuple]:
    """The articles quoted for one question under one setting (tune_provision.choose with
    the cross-encoder's term)."""
    scored = sorted(((cos + weight * share + c / (1 + math.exp(-x))) * decay ** r, r, key)
                    for (r, key, cos, share, _), x in zip(feats, ce, strict=True) if r < top)
    if not scored:
        return []
    best = scored[-1]
    out = [best[2]]
    if second > 0:
        other = next((s for s in reversed(scored) if s[2] != best[2]), None)
        if other is not None and other[0] >= second * best[0]:
            out.append(other[2])
    return out


def evaluate(rows, ces, part: str, setting) -> dict[str, float]:
    rs = [r for r in rows if r["part"] == part]
    quoted = [choose(r["passages"], ces[r["id"]], *setting) for r in rs]
    gold = sum(bool(set(q) & r["gold"]) for q, r in zip(quoted, rs, strict=True))
    return {"gold_quoted": gold / len(rs), "quoted_articles": sum(map(len, quoted)) / len(rs),
            "n": len(rs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--encoders", type=Path, required=True,
                    help="the two fold query encoders of bench/tune_fusion.py (trained if "
                         "missing)")
    ap.add_argument("--provisions", type=Path, required=True,
                    help="bench/tune_provision.py --encoders --cache FILE (made if missing)")
    ap.add_argument("--hits", type=Path, help="keep bench/train_cross_oof.py's training hits "
                                              "here (pickle)")
    ap.add_argument("--scores", type=Path, help="keep the passages' cross-encoder scores "
                                                "here (pickle)")
    ap.add_argument("--out", type=Path, help="write the grid's results here (JSON)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import train_cross_oof
    import tune_provision
    from tune_fusion import cached

    from legalrag.answer.assistant import PROVISION_FROM
    from legalrag.answer.provision import BIGRAM_WEIGHT, RANK_DECAY, SECOND_PROVISION
    from legalrag.retrieval.evaluate import load_queries

    questions = load_queries(args.queries)
    queries = {q.id: q.query for q in questions}
    rows = cached(args.provisions,
                  lambda: tune_provision.collect(questions, None, args.encoders))

    def make_scores():
        hits = cached(args.hits, lambda: train_cross_oof.collect(questions, args.encoders, 30))
        read = Namespace(max_len=128, layers=2, passages=False, headings=False, depth=[20])
        return score_passages(rows, train_cross_oof.as_read(hits, read), queries)

    ces = cached(args.scores, make_scores)
    grid = list(itertools.product((0.5, 0.75, 1.0), (0.93, 0.96, 1.0), (3, 5),
                                  (0.8, 0.85, 0.9), (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)))
    current = (BIGRAM_WEIGHT, RANK_DECAY, PROVISION_FROM, SECOND_PROVISION, 0.0)
    results = [{"setting": dict(zip(("weight", "decay", "top", "second", "c"), s,
                                    strict=True)),
                "tune": evaluate(rows, ces, "tune", s), "dev": evaluate(rows, ces, "dev", s)}
               for s in grid]

    def objective(r):
        return r["tune"]["gold_quoted"] - 0.1 * r["tune"]["quoted_articles"]

    now = next(r for r in results if tuple(r["setting"].values()) == current)
    report = [("current", now),
              ("best without the cross-encoder",
               max((r for r in results if r["setting"]["c"] == 0), key=objective)),
              ("best with it", max((r for r in results if r["setting"]["c"] > 0),
                                   key=objective))]
    report += [(f"current weights, c = {c}", next(
        r for r in results if tuple(r["setting"].values()) == (*current[:4], c)))
        for c in (0.1, 0.25, 0.5, 1.0, 2.0)]
    for name, r in report:
        print(f"{name}: {r['setting']}")
        for part in ("tune", "dev"):
            m = r[part]
            print(f"  {part} (n={m['n']}): gold quoted {m['gold_quoted']:.3f}, "
                  f"articles quoted {m['quoted_articles']:.2f}, "
                  f"objective {m['gold_quoted'] - 0.1 * m['quoted_articles']:.3f}")
    if args.out:
        args.out.write_text(json.dumps({**{name: r for name, r in report}, "grid": results},
                                       ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
