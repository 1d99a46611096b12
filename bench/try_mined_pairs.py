"""Does the query encoder learn more from the corpus's own cross-references? A lever tried
for more training data than the 1,000 tune questions.

    LEGALRAG_INDEX_DIR=... .venv/bin/python bench/try_mined_pairs.py OUT_DIR \
        [-n 2000] [--chars 120] [--out FILE]

The query encoder generalizes with the number of questions it learns from: trained on
half of the tune part it reaches dev dense Recall@10 0.55–0.57, on all of it 0.615. STARD
has no more questions we may use, but the corpus has pairs of its own: an article that
refers to another (人民法院依照民法典第一千一百八十八条的规定予以支持, 依照本法第三十八条)
describes a situation the referred article rules on. Each in-force article with a
reference to another in-force article becomes a pseudo-question, its references cut out
(the law titles and 第X条 with them, so the encoder cannot learn to read numbers), and the
referred articles are its gold.

A sample of n pairs joins the tune questions; the encoder is trained exactly as the index's
tune stage trains it (TuneConfig) into OUT_DIR, and dense retrieval over the in-force
articles is scored on dev and tune, beside the index's own encoder. No dev question is
used to train or choose.

With --encoders DIR (bench/tune_fusion.py's two fold encoders, each trained on half of the
tune part) it also scores them alone and the average of their query vectors with the
index encoder's: how retrieval grows with the number of questions learned, and whether an
ensemble of encoders stands in for more of them.

With --pairs FILE the extra questions are not mined but read from FILE, the questions the
local chat model wrote about sampled articles (bench/gen_questions.py; its filter is applied
again on reading), each with its article as the gold.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

_NUM = "〇零一二三四五六七八九十百千"
# What find_citations leaves of a reference: 依照本法第三十八条、第四十条的规定 and the like.
_BARE = re.compile(
    rf"(依照|根据|按照|依据|适用|违反)?(本法|本条例|本规定|本办法|本解释)?第[{_NUM}]+条"
    r"(之[一二三四五六七八九十]+)?(第[一二三四五六七八九十]+款)?"
    r"(第[（(][一二三四五六七八九十]+[)）]项)?"
    rf"(、第[{_NUM}]+条)*((的)?规定)?")


def mine(articles, names) -> list[tuple[str, list[int]]]:
    """(pseudo-question, rows of the in-force articles it refers to) for every in-force
    article that refers to another one and keeps 20 characters once the references go."""
    from legalrag.citations import cross_references, find_citations, reference_key

    row_of = {(a.law, a.number, a.suffix): i for i, a in enumerate(articles) if a.in_force}
    out = []
    for i, a in enumerate(articles):
        if not a.in_force:
            continue
        golds = set()
        for ref in cross_references(a.text):
            key = reference_key(ref, a.law, names.resolve)
            j = row_of.get(key) if key else None
            if j is not None and j != i:
                golds.add(j)
        if not golds:
            continue
        text = a.text
        for c in sorted(find_citations(text), key=lambda c: -c.start):
            text = text[:c.start] + text[c.end:]
        text = re.sub(r"\s+", "", _BARE.sub("", text))
        if len(text) >= 20:
            out.append((text, sorted(golds)))
    return out


def dense_scores(retriever, encode, questions, keys) -> dict[str, float]:
    from tune_fusion import gold_keys

    vectors = encode([q["query"] for q in questions])
    r10 = r100 = mrr = 0.0
    for i, q in enumerate(questions):
        gold = gold_keys(retriever, q["relevant"])
        ranked, _ = retriever._dense(q["query"], 100, retriever.in_force,
                                     vectors[i:i + 1].astype(np.float32))
        got = [keys[d] for d in ranked]
        n = len(q["relevant"])
        r10 += len(gold & set(got[:10])) / n
        r100 += len(gold & set(got)) / n
        mrr += next((1 / (j + 1) for j, k in enumerate(got[:10]) if k in gold), 0.0)
    n = len(questions)
    return {"R@10": round(r10 / n, 4), "R@100": round(r100 / n, 4), "MRR@10": round(mrr / n, 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("encoder", type=Path, help="where to save the encoder trained with pairs")
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("-n", type=int, default=2000, help="mined pairs to add (default 2000)")
    ap.add_argument("--chars", type=int, default=120, help="cut pseudo-questions to this")
    ap.add_argument("--out", type=Path, help="write the results here (JSON)")
    ap.add_argument("--encoders", type=Path, help="also score the two fold encoders here")
    ap.add_argument("--pairs", type=Path, help="train on these written questions instead of "
                    "mined pairs (bench/gen_questions.py's output; -n caps their number)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from dataclasses import replace

    from legalrag.citations import LawNames
    from legalrag.config import Settings
    from legalrag.index.embed import embedding_model_dir
    from legalrag.index.tune import (
        Example,
        TuneConfig,
        fine_tune_queries,
        load_questions,
        make_examples,
        split_of,
    )
    from legalrag.retrieval.retriever import Retriever

    retriever = Retriever.open(Settings.load())
    articles = retriever.articles
    questions = load_questions(args.queries)
    examples, rows = make_examples(questions, articles, "tune")
    position = {r: p for p, r in enumerate(rows)}
    if args.pairs:
        from gen_questions import keep

        row_of = {(a.law, a.number, a.suffix): i for i, a in enumerate(articles)
                  if a.in_force}
        pairs = []
        for line in args.pairs.read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            if tuple(d["key"]) in row_of and keep(d["question"]):
                pairs.append((d["question"], [row_of[tuple(d["key"])]]))
    else:
        pairs = mine(articles, LawNames(sorted({a.law for a in articles})))
    sample = random.Random(0).sample(pairs, min(args.n, len(pairs)))
    mined = [Example(text[:args.chars], tuple(position[j] for j in golds))
             for text, golds in sample]
    print(f"{len(pairs)} pairs mined; training on {len(examples)} questions + {len(mined)}",
          file=sys.stderr)
    if not (args.encoder / "legalrag-tune.json").exists():
        t0 = time.perf_counter()
        vectors = retriever.dense.reconstruct_n(0, retriever.dense.ntotal)
        fine_tune_queries(embedding_model_dir(retriever.settings.embedding_model),
                          examples + mined, vectors[rows], args.encoder, TuneConfig())
        print(f"trained in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    other = Retriever(retriever.build_dir, replace(retriever.settings,
                                                   query_encoder=str(args.encoder)),
                      verify=False)
    keys = [(a.law, a.number, a.suffix) for a in articles]
    encoders = {"index encoder": retriever.embedder.encode,
                "with written questions" if args.pairs else "with mined pairs":
                    other.embedder.encode}
    if args.encoders:
        from tune_fusion import fold_encoders

        folds = [Retriever(retriever.build_dir, replace(retriever.settings,
                                                        query_encoder=str(path)),
                           verify=False).embedder.encode
                 for path in fold_encoders(retriever, questions, args.encoders)]
        encoders["fold 0 (half the tune part)"] = folds[0]
        encoders["fold 1 (the other half)"] = folds[1]

        def average(texts: list[str]) -> np.ndarray:
            v = sum(encode(texts) for encode in (retriever.embedder.encode, *folds))
            return v / np.linalg.norm(v, axis=1, keepdims=True)
        encoders["average of the index encoder and both folds"] = average
    results = {"pairs_available": len(pairs), "pairs_used": len(mined)}
    for name, encode in encoders.items():
        for part in ("dev", "tune"):
            if part == "tune" and name.startswith(("fold", "average")):
                continue  # each fold learned half of these questions
            qs = [q for q in questions if split_of(q["id"]) == part]
            results[f"{name}, {part}"] = dense_scores(retriever, encode, qs, keys)
            print(f"{name}, {part} ({len(qs)}): {results[f'{name}, {part}']}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
