"""Swap under load (issue 14): 8 chat sessions ask questions while `legalrag index update`
publishes twice; no question may fail, and the wait for sources during a swap is
compared with the same wait without one.

    .venv/bin/python bench/swap_load.py                       # 8 sessions, 2 updates
    .venv/bin/python bench/swap_load.py --sessions 8 --quiet-seconds 40 --out x.json

In-process: one ChatService (the browser chat's, with its LiveRetriever) over a small real
index (hybrid: BM25 + m3e-small), SmolLM2 writing short answers (llm_max_tokens 16) so the
model queue turns over quickly. Each session thread asks, reads the whole answer, asks
again. "Wait for sources" is from the question to the first view that shows the retrieved
articles. After a quiet spell the real CLI (`python -m legalrag index update`, a separate
process, like an administrator) runs twice, each time after adding or removing a law; a
swap window lasts from the CLI's start until the server answers from the new build. A
question counts as "during a swap" when its retrieval overlapped a window, else "quiet".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FILES = ["社会法/劳动法(2018-12-29).md", "社会法/劳动合同法(2012-12-28).md", "laws.sqlite3"]
EXTRA = "行政法规/个体工商户条例(2016-02-06).md"
QUESTIONS = ["试用期最长可以约定多久？", "公司拖欠工资怎么办？", "劳动合同法第四十七条",
             "加班费怎么计算？", "个体工商户登记需要什么？", "单位不签劳动合同要赔钱吗？"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--quiet-seconds", type=float, default=40.0)
    ap.add_argument("--updates", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=16, help="answer length (tokens)")
    ap.add_argument("--source-tokens", type=int, default=600, help="prompt tokens for sources")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from legalrag.answer.modelfile import smollm2_path
    from legalrag.config import Settings
    from legalrag.index.build import build_index
    from legalrag.web.chat import ChatService
    from legalrag.web.session import ChatSession

    work = Path(tempfile.mkdtemp(prefix="legalrag-swap-"))
    for rel in FILES:
        (work / "corpus" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "corpus" / rel, work / "corpus" / rel)
    env = {"LEGALRAG_CORPUS_DIR": str(work / "corpus"),
           "LEGALRAG_INDEX_DIR": str(work / "indexes"), "LEGALRAG_TUNE_QUESTIONS": "",
           "LEGALRAG_LLM_MODEL_PATH": str(smollm2_path()),
           "LEGALRAG_LLM_MAX_TOKENS": str(args.max_tokens),
           "LEGALRAG_LLM_CONTEXT": "2048",
           "LEGALRAG_ANSWER_SOURCE_TOKENS": str(args.source_tokens)}
    settings = Settings.load(env=env)
    build_index(settings)
    service = ChatService(settings)
    service.warm_up()

    waits: list[dict] = []
    errors: list[str] = []
    stop = threading.Event()

    def session(n: int) -> None:
        s = ChatSession()
        i = n
        while not stop.is_set():
            q = QUESTIONS[i % len(QUESTIONS)]
            i += 1
            t0 = time.perf_counter()
            seen = None
            last = None
            for _view in service.respond(s, q):
                ex = s.exchanges[-1]
                if seen is None and ex.hits:
                    seen = time.perf_counter() - t0
                last = ex
            if last is None or last.state == "error" or seen is None and last.state != "done":
                errors.append(f"{q}: {last.state if last else '-'} {last.error if last else ''}")
            waits.append({"phase": "", "sources_s": seen, "total_s": time.perf_counter() - t0,
                          "start": t0, "swaps_seen": service.live.swaps})
            if len(s.exchanges) > 6:
                s = ChatSession()

    threads = [threading.Thread(target=session, args=(n,), daemon=True)
               for n in range(args.sessions)]
    t_start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(args.quiet_seconds)
    cli_env = {**os.environ, **env}
    updates = []
    windows: list[tuple[float, float]] = []  # from the CLI's start to the new build serving
    extra = work / "corpus" / Path(EXTRA).name
    for _ in range(args.updates):
        if extra.exists():
            extra.unlink()
        else:
            shutil.copy2(ROOT / "corpus" / EXTRA, extra)
        before = service.live.swaps
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "legalrag", "index", "update", "-q"],
                       env=cli_env, check=True, capture_output=True)
        published = time.perf_counter()
        while service.live.swaps == before and time.perf_counter() - published < 120:
            time.sleep(0.05)
        windows.append((t0, time.perf_counter()))
        updates.append({"update_s": round(published - t0, 2),
                        "publish_to_serving_s": round(time.perf_counter() - published, 2),
                        "swapped": service.live.swaps > before})
        time.sleep(args.quiet_seconds / 2)
    stop.set()
    for t in threads:
        t.join(300)
    for w in waits:  # a question whose retrieval ran while an update or swap was under way
        end = w["start"] + (w["sources_s"] or 0.0)
        w["phase"] = "swap" if any(a <= end and w["start"] <= b for a, b in windows) else "quiet"

    def stats(rows: list[dict]) -> dict:
        s = np.array([r["sources_s"] for r in rows if r["sources_s"] is not None])
        return {"questions": len(rows), "sources_p50_s": round(float(np.median(s)), 3),
                "sources_p95_s": round(float(np.percentile(s, 95)), 3),
                "sources_max_s": round(float(s.max()), 3)} if len(s) else {"questions": 0}

    report = {
        "sessions": args.sessions, "max_tokens": args.max_tokens,
        "source_tokens": args.source_tokens, "updates": updates, "errors": len(errors),
        "error_samples": errors[:5], "swaps": service.live.swaps,
        "quiet": stats([w for w in waits if w["phase"] == "quiet"]),
        "during_swaps": stats([w for w in waits if w["phase"] == "swap"]),
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    text = json.dumps(report, ensure_ascii=False, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if not errors and all(u["swapped"] for u in updates) else 1


if __name__ == "__main__":
    sys.exit(main())
