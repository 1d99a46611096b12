"""Index benchmark: full build, incremental update, query latency, memory and disk.

    .venv/bin/python bench/bench_index.py [--work /tmp/legalrag-bench] [--sample 2000]

Runs on a copy of corpus/ (one law held back so that adding it can be timed as an update)
and prints a Markdown report; the JSON goes to bench/results/index.json. What it measures:

- full `index build` wall time in a subprocess, its peak RSS, and when each part went
  live (BM25 + exact lookup, dense, the tuned query encoder);
- embedding speed inside the build (articles/s) beside the raw speed of the same model on
  a sample of the same texts in the same run: sentence-transformers fp32 and the int8
  ONNX export, and how far int8 moves the vectors and the dense top-10;
- `index update` after adding one law, and with nothing changed;
- warm query latency (hybrid, bm25, dense, exact lookup), p50/p95 over STARD questions;
- index size on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELD_BACK = "行政法规/个体工商户条例(2016-02-06).md"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    i = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[i]


def cli(work: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "legalrag", "--corpus", str(work / "corpus"),
            "--index-dir", str(work / "indexes"), *args]


def timed_build(work: Path) -> dict:
    """Full build in a subprocess; polls CURRENT to see when the sparse part went live."""
    current = work / "indexes" / "CURRENT"
    t0 = time.perf_counter()
    proc = subprocess.Popen(cli(work, "index", "build", "-q"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    live: dict[str, float] = {}  # part -> seconds until it was first served
    while proc.poll() is None:
        try:
            name = current.read_text().strip()
            parts = json.loads((current.parent / "builds" / name / "manifest.json").read_text())
            for part in parts["parts"]:
                live.setdefault(part, time.perf_counter() - t0)
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"build failed:\n{err}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_s": wall, "live_s": live, "peak_rss_mb": peak_mb, "summary": out.strip()}


def timed_cli(work: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(cli(work, *args), check=True, capture_output=True)
    return time.perf_counter() - t0


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def raw_model_speed(settings, texts: list[str], queries: list[str]) -> dict:
    """The same model on the same texts: fp32 sentence-transformers vs the int8 export."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from legalrag.index.embed import embedding_model_dir, load_embedder

    st = SentenceTransformer(str(embedding_model_dir(settings.embedding_model)), device="cpu")
    st.max_seq_length = settings.embedding_max_length
    t0 = time.perf_counter()
    ref = st.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    fp32_rate = len(texts) / (time.perf_counter() - t0)
    int8 = load_embedder(settings)
    t0 = time.perf_counter()
    vec = int8.encode(texts)
    int8_rate = len(texts) / (time.perf_counter() - t0)
    cos = (ref * vec).sum(axis=1)
    # Does int8 change what dense retrieval returns? Top-10 overlap over the sample.
    q_ref = st.encode(queries, normalize_embeddings=True, show_progress_bar=False)
    q_int8 = int8.encode(queries)
    overlap = []
    for a, b in zip(q_ref @ ref.T, q_int8 @ vec.T, strict=True):
        top_a, top_b = set(np.argsort(-a)[:10]), set(np.argsort(-b)[:10])
        overlap.append(len(top_a & top_b) / 10)
    return {"sample": len(texts), "fp32_torch_art_s": fp32_rate, "int8_onnx_art_s": int8_rate,
            "speedup": int8_rate / fp32_rate, "cosine_min": float(cos.min()),
            "cosine_mean": float(cos.mean()), "dense_top10_overlap": statistics.mean(overlap)}


def latency(retriever, queries: list[str], mode: str, repeat: int = 1) -> dict:
    times = []
    for _ in range(repeat):
        for q in queries:
            t0 = time.perf_counter()
            retriever.search(q, k=10, mode=mode)
            times.append((time.perf_counter() - t0) * 1000)
    return {"n": len(times), "p50_ms": pct(times, 50), "p95_ms": pct(times, 95),
            "mean_ms": statistics.mean(times)}


def query_latency(retriever_cls, settings, n: int) -> dict:
    """Warm query latency per mode over STARD questions, and exact lookup over citations."""
    rng = random.Random(1)
    questions = [json.loads(line)["query"] for line in
                 (ROOT / "data" / "eval" / "stard_train.jsonl").read_text().splitlines()]
    rng.shuffle(questions)
    questions = questions[:n]
    t0 = time.perf_counter()
    retriever = retriever_cls.open(settings)
    out: dict = {"open_index_s": time.perf_counter() - t0,
                 "load_avg": os.getloadavg()[0]}
    retriever.warm_up()
    for q in questions[:20]:
        retriever.search(q)
    in_force = [a for a in retriever.articles if a.in_force]
    cited = [f"{a.law}{a.label}" for a in rng.sample(in_force, n)]
    out["query"] = {mode: latency(retriever, questions, mode)
                    for mode in ("hybrid", "bm25", "dense")}
    out["query"]["exact_lookup"] = latency(retriever, cited, "bm25")
    lk = []
    for q in cited:
        t0 = time.perf_counter()
        retriever.lookup_query(q)
        lk.append((time.perf_counter() - t0) * 1000)
    out["query"]["lookup_only"] = {"n": len(lk), "p50_ms": pct(lk, 50), "p95_ms": pct(lk, 95),
                                   "mean_ms": statistics.mean(lk)}
    out["query_process_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/legalrag-bench")
    ap.add_argument("--sample", type=int, default=2000, help="texts for the raw model speed")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "index.json"))
    ap.add_argument("--latency-only", action="store_true",
                    help="only query latency, against the live index of the default settings")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT / "src"))
    from legalrag.config import Settings
    from legalrag.index.build import embed_text
    from legalrag.retrieval.retriever import Retriever

    if args.latency_only:
        r = query_latency(Retriever, Settings.load(), args.queries)
        print(json.dumps(r, indent=1))
        return

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ROOT / "corpus", work / "corpus")
    held = work / "held-back.md"
    shutil.move(work / "corpus" / HELD_BACK, held)
    results: dict = {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M")}

    print("full build …", file=sys.stderr)
    results["build"] = timed_build(work)
    settings = Settings.load(env={}, corpus_dir=work / "corpus", index_dir=work / "indexes")
    build_dir = (work / "indexes" / "builds" /
                 (work / "indexes" / "CURRENT").read_text().strip())
    manifest = json.loads((build_dir / "manifest.json").read_text())
    counts = manifest["counts"]
    secs = manifest["build_seconds"]
    results["build"].update(counts=counts, stages_s=secs,
                            embed_art_s=counts["articles"] / secs["embed"],
                            index_mb=dir_mb(build_dir))

    print("update after adding one law …", file=sys.stderr)
    shutil.copy2(held, work / "corpus" / HELD_BACK)
    results["update_add_one_law_s"] = timed_cli(work, "index", "update", "-q")
    results["update_nothing_changed_s"] = timed_cli(work, "index", "update", "-q")

    print("raw model speed …", file=sys.stderr)
    retriever = Retriever.open(settings)
    rng = random.Random(0)
    sample = rng.sample(retriever.articles, min(args.sample, len(retriever.articles)))
    questions = [json.loads(line)["query"] for line in
                 (ROOT / "data" / "eval" / "stard_train.jsonl").read_text().splitlines()]
    rng.shuffle(questions)
    questions = questions[: args.queries]
    results["raw_model"] = raw_model_speed(settings, [embed_text(a) for a in sample],
                                           questions[:200])

    print("query latency …", file=sys.stderr)
    results.update(query_latency(Retriever, settings, args.queries))

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=1))
    print(report(results))


def report(r: dict) -> str:
    b, raw, q = r["build"], r["raw_model"], r["query"]
    c = b["counts"]
    lines = [
        f"Measured {r['date']} on {r['cpus']} cores by `bench/bench_index.py`.",
        "",
        "| what | result |",
        "|---|---|",
        f"| corpus | {c['laws']} laws, {c['versions']} versions, {c['in_force']} articles in "
        f"force / {c['articles']} all |",
        f"| full build, wall (parse → tuned query encoder) | {b['wall_s'] / 60:.1f} min |",
        f"| BM25 + exact lookup live after | {b['live_s'].get('bm25', 0):.0f} s |",
        f"| dense part live after | {b['live_s'].get('dense', b['wall_s']):.0f} s |",
        f"| tuned query encoder live after (all parts) | "
        f"{b['live_s'].get('tuned-queries', b['wall_s']):.0f} s |",
        f"| build stages (s) | {', '.join(f'{k} {v:.0f}' for k, v in b['stages_s'].items())} |",
        f"| embedding inside the build | {b['embed_art_s']:.0f} articles/s |",
        f"| same model, raw, fp32 sentence-transformers (sample of {raw['sample']}) | "
        f"{raw['fp32_torch_art_s']:.0f} articles/s |",
        f"| same model, raw, int8 ONNX Runtime (same sample) | {raw['int8_onnx_art_s']:.0f} "
        f"articles/s ({raw['speedup']:.1f}x) |",
        f"| int8 vs fp32: cosine min / mean | {raw['cosine_min']:.3f} / {raw['cosine_mean']:.3f} |",
        f"| int8 vs fp32: dense top-10 overlap (200 questions) | "
        f"{raw['dense_top10_overlap']:.2f} |",
        f"| peak memory of the build | {b['peak_rss_mb']:.0f} MB |",
        f"| index size on disk | {b['index_mb']:.0f} MB |",
        f"| `index update` after adding one law | {r['update_add_one_law_s']:.1f} s |",
        f"| `index update` with nothing changed | {r['update_nothing_changed_s']:.1f} s |",
        f"| loading the index | {r['open_index_s']:.1f} s |",
    ]
    for mode in ("hybrid", "bm25", "dense", "exact_lookup", "lookup_only"):
        m = q[mode]
        lines.append(f"| query latency, {mode} (n={m['n']}) | p50 {m['p50_ms']:.1f} ms, "
                     f"p95 {m['p95_ms']:.1f} ms |")
    lines.append(f"| query process peak memory | {r['query_process_rss_mb']:.0f} MB |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
