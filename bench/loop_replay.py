"""Replay the loop detector over saved answers: where would it stop each one?

    .venv/bin/python bench/loop_replay.py [--ref REV]

Every answers.json under bench/results/answers holds the model's raw text per question.
Each text is fed to ``assistant.looping`` in prefixes growing by 12 characters (about
the 16 tokens between the assistant's checks), as generation would feed it, and the
first prefix it calls a loop is noted. With --ref the detector of another revision
(git show REV:src/legalrag/answer/assistant.py) is replayed too, and the answers the two
stop differently are printed with the text before the stop, to be read one by one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
STEP = 12


def first_stop(raw: str, looping) -> int | None:
    for n in range(STEP, len(raw) + STEP, STEP):
        if looping(raw[:n]):
            return min(n, len(raw))
    return None


def detector_at(rev: str):
    """assistant.looping as revision rev wrote it."""
    source = subprocess.run(["git", "show", f"{rev}:src/legalrag/answer/assistant.py"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("assistant_at_rev")
    sys.modules[module.__name__] = module  # its dataclasses look their module up
    exec(compile(source, f"{rev}:assistant.py", "exec"), module.__dict__)
    return module.looping


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", help="also replay the detector of this git revision")
    args = ap.parse_args()
    from legalrag.answer.assistant import looping

    other = detector_at(args.ref) if args.ref else None
    answers = stopped = 0
    differ = []
    for path in sorted((ROOT / "bench/results/answers").rglob("answers.json")):
        for q in json.loads(path.read_text(encoding="utf-8")).get("questions", []):
            raw = (q.get("answer") or {}).get("raw_text") or ""
            if not raw:
                continue
            answers += 1
            now = first_stop(raw, looping)
            stopped += now is not None
            if other is not None and (before := first_stop(raw, other)) != now:
                differ.append((path.parent.name, q["id"], before, now, raw[:now][-120:]))
    print(f"{answers} saved answers; the detector stops {stopped}")
    if other is not None:
        print(f"stopped differently from {args.ref}: {len(differ)}")
        for run, qid, before, now, tail in differ:
            print(f"- {run} {qid}: at {before} before, at {now} now; …{tail!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
