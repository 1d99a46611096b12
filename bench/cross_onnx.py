"""Would ONNX Runtime run the cross-encoder faster than torch? Times the shipped model's
scoring of real top-20 hits both ways and checks that the scores agree.

    .venv/bin/python bench/cross_onnx.py [-n 100] [--out FILE]

The shipped cross-encoder (setting cross_encoder) is loaded twice as the product loads it:
on torch, and on ONNX Runtime from a fresh export in a temporary folder (fp32, dynamic
batch and length; retrieval/cross.py), with as many threads as torch uses. For a
fixed random sample of STARD questions the hybrid top 20 (cross-encoder off) is read as the
product reads it (CrossEncoder.texts), and each pass is timed warm, one question at a
time. Reports p50 / p95 milliseconds of each, the largest score difference and the CPU
flags that matter for speed. """

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=100, help="questions timed")
    ap.add_argument("--out", type=Path, help="write the results here (JSON)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch
    from cross_latency import cpu_flags, pct

    from legalrag.config import Settings
    from legalrag.retrieval.cross import CrossEncoder
    from legalrag.retrieval.retriever import Retriever

    settings = Settings.load()
    cross = CrossEncoder.load(settings.cross_encoder, "torch")
    if cross is None:
        raise SystemExit("no usable cross-encoder in the settings: nothing to time")
    plain = Retriever.open(replace(settings, cross_encoder=""))
    lines = (ROOT / "data/eval/stard_train.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(x)["query"] for x in lines if x.strip()]
    random.Random(2).shuffle(questions)
    pairs = []
    for q in questions[:args.n]:
        hits = plain.search(q, k=cross.config.depth, mode="hybrid")
        pairs.append((q, cross.texts(q, [h.article for h in hits])))

    with tempfile.TemporaryDirectory() as tmp:  # the product's export, made afresh
        onnx = CrossEncoder.load(settings.cross_encoder, "onnx", Path(tmp))
    if onnx is None or onnx.backend != "onnx":
        raise SystemExit("the ONNX export did not load: see the warning above")
    import onnxruntime as ort

    result = {"questions": len(pairs), "depth": cross.config.depth,
              "max_len": cross.config.max_len, "layers": cross.config.layers,
              "threads": torch.get_num_threads(), "cpu_flags": cpu_flags(),
              "versions": {"onnxruntime": ort.__version__, "torch": torch.__version__}}
    scores = {}
    for name, run in (("torch", cross.scores), ("onnxruntime", onnx.scores)):
        for q, texts in pairs[:5]:  # warm-up
            run(q, texts)
        ms, out = [], []
        for q, texts in pairs:
            t0 = time.perf_counter()
            out.append(np.asarray(run(q, texts), dtype=np.float64))
            ms.append(1000 * (time.perf_counter() - t0))
        scores[name] = out
        result[name] = {"p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95),
                        "mean_ms": sum(ms) / len(ms)}
    diff = max(float(np.abs(a - b).max()) for a, b in
               zip(scores["torch"], scores["onnxruntime"], strict=True))
    same = sum(int(np.argmax(a) == np.argmax(b)) for a, b in
               zip(scores["torch"], scores["onnxruntime"], strict=True))
    result |= {"max_score_difference": diff, "same_best_hit": same / len(pairs)}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
