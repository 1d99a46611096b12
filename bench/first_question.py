"""The first question of a new process: what the warm-up before it saves.

    .venv/bin/python bench/first_question.py [--runs 2] [--out FILE]

Each run is a new Python process over the live index and the configured chat model, which
prepares in one of three ways and then answers one question, timed from the question on:

- cold: nothing first, as `legalrag ask` before 2026-12-06 (the question loads it all);
- models: the index's models and the chat model loaded first, as the browser chat's
  warm-up did before 2026-12-06;
- warm: Assistant.warm_up, the chat's warm-up since then (the models, and the prompt
  prefix every answer shares read into the model's cache).

The runs alternate between the ways, so a slow spell of the machine hits each alike.
Printed: seconds to get ready, to the sources, to the first answer token and to the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

QUESTION = "公司拖欠工资三个月，我可以辞职并要求经济补偿吗？"
WAYS = ("cold", "models", "warm")


def one(way: str) -> dict:
    """Prepare the chosen way, answer QUESTION, return the times in seconds."""
    from legalrag.answer.assistant import Assistant, Sources, Token
    from legalrag.config import Settings

    t0 = time.perf_counter()
    assistant = Assistant(Settings.load())
    if way == "models":
        assistant.retriever.warm_up()
        _ = assistant.model
    elif way == "warm":
        assistant.warm_up()
    ready = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = {"way": way, "ready_s": ready}
    for event in assistant.stream(QUESTION):
        if isinstance(event, Sources):
            out["sources_s"] = time.perf_counter() - t0
        elif isinstance(event, Token) and "first_token_s" not in out:
            out["first_token_s"] = time.perf_counter() - t0
    out["total_s"] = time.perf_counter() - t0
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=2, help="processes per way")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--one", choices=WAYS, help=argparse.SUPPRESS)  # a child process
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.one:
        print(json.dumps(one(args.one)))
        return 0
    rows = []
    for _ in range(args.runs):
        for way in WAYS:
            done = subprocess.run([sys.executable, __file__, "--one", way], check=True,
                                  capture_output=True, text=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], file=sys.stderr, flush=True)
    cols = ("ready_s", "sources_s", "first_token_s", "total_s")
    print("| before the question | " + " | ".join(c.replace("_s", " (s)") for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for way in WAYS:
        mine = [r for r in rows if r["way"] == way]
        print(f"| {way} | " + " | ".join(
            f"{statistics.median(r[c] for r in mine):.2f}" for c in cols) + " |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
