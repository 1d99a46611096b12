"""What would shipping the corpus's article vectors with the repository cost and keep?

    LEGALRAG_INDEX_DIR=... .venv/bin/python bench/try_shipped_vectors.py [--out FILE]
        [--save FILE]

A first build on a 2-core AVX2-only machine spends most of its 33 minutes embedding 63,310
article texts (docs/benchmarks.md). Issue 13 names the lever: ship the vectors of the
shipped corpus, verify them at load against a fresh embedding of a sample, and embed only
what is new. This script measures, from the live index, what that would take:

- size: the distinct texts' vectors (one per content key, as the build embeds them) as
  float16 and as int8 with one float16 scale per vector, each written with
  numpy.savez_compressed, beside the repository's size today;
- fidelity: the cosine of every int8 vector, scaled back and normalized, to the original;
- retrieval: the dev part through the product's search, hybrid, with the index's vectors
  and with the int8 ones put in their place (same query encoder, same reranker);
- load and check: the seconds to read the int8 file, and to embed a sample of 64 texts
  afresh with this machine's embedder and compare (the check a build would make).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and one float16 scale per row: row ≈ q * scale / 127."""
    scale = np.abs(vectors).max(axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    q = np.round(vectors / scale * 127).astype(np.int8)
    return q, scale.astype(np.float16)


def restore(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    v = q.astype(np.float32) * (scale.astype(np.float32) / 127)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def compressed_size(**arrays: np.ndarray) -> int:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getbuffer().nbytes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=Path, default=ROOT / "data/eval/stard_train.jsonl")
    ap.add_argument("--out", type=Path, help="write the results here (JSON)")
    ap.add_argument("--save", type=Path, help="write the int8 file here (.npz)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import faiss

    from legalrag.config import Settings
    from legalrag.index.build import content_key, embed_text
    from legalrag.index.embed import load_embedder
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import load_queries, run_eval
    from legalrag.retrieval.retriever import Retriever

    settings = Settings.load()
    retriever = Retriever.open(settings, verify=False)
    vectors = retriever.dense.reconstruct_n(0, retriever.dense.ntotal)
    texts = [embed_text(a) for a in retriever.articles]
    keys = [content_key(t) for t in texts]
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    rows = list(first.values())
    distinct = vectors[rows]
    key_array = np.array(list(first), dtype="S24")
    q, scale = quantize(distinct)
    out: dict = {"articles": len(keys), "distinct_texts": len(rows), "dim": int(vectors.shape[1])}
    out["bytes_float16"] = compressed_size(keys=key_array, vectors=distinct.astype(np.float16))
    out["bytes_int8"] = compressed_size(keys=key_array, vectors=q, scales=scale)
    restored = restore(q, scale)
    cos = np.einsum("ij,ij->i", restored, distinct)
    out["int8_cosine_min"] = round(float(cos.min()), 5)
    out["int8_cosine_mean"] = round(float(cos.mean()), 5)

    queries = [x for x in load_queries(args.queries) if split_of(x.id) == "dev"]
    metrics = ("recall@5", "recall@10", "recall@100", "mrr@10")

    def dev_scores() -> dict[str, float]:
        report = run_eval(retriever, queries, ("hybrid",), (5, 10, 100))
        return {m: round(report.aggregate["hybrid"][m], 4) for m in metrics}

    out["dev, the index's vectors"] = dev_scores()
    full = restore(*quantize(vectors))
    index = faiss.IndexFlatIP(full.shape[1])
    index.add(full)
    original, retriever.dense = retriever.dense, index
    out["dev, int8 vectors"] = dev_scores()
    retriever.dense = original

    if args.save:
        np.savez_compressed(args.save, keys=key_array, vectors=q, scales=scale)
        t = time.perf_counter()
        with np.load(args.save) as f:
            loaded = {k: f[k] for k in ("keys", "vectors", "scales")}
        restore(loaded["vectors"], loaded["scales"])
        out["load_seconds"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    sample = np.random.default_rng(0).choice(len(rows), 64, replace=False)
    fresh = load_embedder(settings).encode([texts[rows[i]] for i in sample])
    check = np.einsum("ij,ij->i", fresh, restored[sample])
    out["check_seconds"] = round(time.perf_counter() - t, 2)
    out["check_cosine_min"] = round(float(check.min()), 5)
    for k, v in out.items():
        print(f"{k}: {v}")
    if args.out:
        args.out.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
