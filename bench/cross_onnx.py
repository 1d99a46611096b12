"""Would ONNX Runtime run the cross-encoder faster than torch? Times the shipped model's
scoring of real top-20 hits both ways and checks that the scores agree.

    .venv/bin/python bench/cross_onnx.py [-n 100] [--out FILE]

The shipped cross-encoder (setting cross_encoder) is loaded as the product loads it. Its
encoder is exported once to an ONNX file in a temporary folder (fp32, dynamic batch and
length) and run by onnxruntime's CPU provider with as many threads as torch uses. For a
fixed random sample of STARD questions the hybrid top 20 (cross-encoder off) is read as the
product reads it (CrossEncoder.texts), and each pass is timed warm, one question at a
time. Reports p50 / p95 milliseconds of each, the largest score difference and the CPU
flags that matter for speed. Nothing in the product changes.
"""

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
    import onnxruntime as ort
    import torch
    from cross_latency import cpu_flags, pct

    from legalrag.config import Settings
    from legalrag.retrieval.cross import CrossEncoder
    from legalrag.retrieval.retriever import Retriever

    settings = Settings.load()
    cross = CrossEncoder.load(settings.cross_encoder)
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

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = cross.bert

        def forward(self, ids, mask, types):
            cls = self.bert(input_ids=ids, attention_mask=mask,
                            token_type_ids=types).last_hidden_state[:, 0]
            return cls @ cross.head_w + cross.head_b

    def batch(q: str, texts: list[str]) -> dict:
        return dict(cross.tokenizer([q] * len(texts), texts, truncation="longest_first",
                                    max_length=cross.config.max_len, padding=True,
                                    return_tensors="np"))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cross.onnx"
        example = {k: torch.from_numpy(v) for k, v in batch(*pairs[0]).items()}
        torch.onnx.export(Encoder().eval(), (example["input_ids"], example["attention_mask"],
                                             example["token_type_ids"]), str(path),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["score"], opset_version=17, dynamo=False,
                          dynamic_axes={k: {0: "n", 1: "len"} for k in
                                        ("input_ids", "attention_mask", "token_type_ids")})
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run_ort(q: str, texts: list[str]) -> np.ndarray:
        return session.run(None, batch(q, texts))[0]

    def run_torch(q: str, texts: list[str]) -> np.ndarray:
        return cross.scores(q, texts)

    result = {"questions": len(pairs), "depth": cross.config.depth,
              "max_len": cross.config.max_len, "layers": cross.config.layers,
              "threads": torch.get_num_threads(), "cpu_flags": cpu_flags(),
              "versions": {"onnxruntime": ort.__version__, "torch": torch.__version__}}
    scores = {}
    for name, run in (("torch", run_torch), ("onnxruntime", run_ort)):
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
