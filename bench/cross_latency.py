"""What the cross-encoder stage costs a question: warm hybrid retrieval with it and without.

    .venv/bin/python bench/cross_latency.py [-n 200] [--out FILE]
    ATEN_CPU_CAPABILITY=avx2 .venv/bin/python bench/cross_latency.py    # torch without AVX-512
    LEGALRAG_CROSS_ENCODER_BACKEND=torch .venv/bin/python bench/cross_latency.py

Both retrievers open the live index of the default settings; the same STARD questions (a
fixed random sample) go through each, one at a time, after a warm-up. Reports p50 / p95 /
mean milliseconds, the CPU flags that matter for speed, the kernels torch chose and what
ran the cross-encoder (setting cross_encoder_backend: ONNX Runtime by default).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile")


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return [f for f in SPEED_FLAGS if f in have]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=200, help="questions timed")
    ap.add_argument("--out", type=Path, help="write the results here (JSON)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from legalrag.config import Settings
    from legalrag.retrieval.retriever import Retriever

    settings = Settings.load()
    rng = random.Random(1)
    lines = (ROOT / "data/eval/stard_train.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(x)["query"] for x in lines if x.strip()]
    rng.shuffle(questions)
    questions = questions[:args.n]
    out = {"cpu_flags": cpu_flags(), "torch_capability": torch.backends.cpu.get_cpu_capability(),
           "threads": torch.get_num_threads(), "questions": len(questions)}
    for name, s in (("without", replace(settings, cross_encoder="")), ("with", settings)):
        r = Retriever.open(s)
        r.warm_up()
        if name == "with" and r.cross is None:
            raise SystemExit("the cross-encoder did not load: see the warning above")
        if name == "with":
            out["backend"] = r.cross.backend  # settings.cross_encoder_backend, if it loaded
        for q in questions[:10]:
            r.search(q, k=10)
        times = []
        for q in questions:
            t0 = time.perf_counter()
            r.search(q, k=10)
            times.append(1000 * (time.perf_counter() - t0))
        out[name] = {"p50_ms": round(pct(times, 50), 1), "p95_ms": round(pct(times, 95), 1),
                     "mean_ms": round(statistics.mean(times), 1)}
        print(f"{name} the cross-encoder: p50 {out[name]['p50_ms']} ms, p95 "
              f"{out[name]['p95_ms']} ms", file=sys.stderr)
    out["load_avg"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
