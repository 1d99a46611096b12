"""Fault runs (issue 14): builds and updates killed at seeded points, with and without a
simulated power cut; after each, the index that loads is complete and answers, and the
corpus is byte-identical.

    .venv/bin/python bench/fault_runs.py                 # 24 seeded points, JSON to stdout
    .venv/bin/python bench/fault_runs.py --points 30 --seed 7 --out bench/results/faults.json
    .venv/bin/python bench/fault_runs.py --no-data-fsync --points 8   # the control

How a point is hit: the build or update runs in a child process whose ``os.fsync`` is
wrapped: it appends the inode of each file or directory it makes durable to a log, and at
the chosen call number the child SIGKILLs itself before that fsync happens. The points are
drawn (seeded, without repeats) from all fsync calls of a full run, so they fall in every
stage after the data is computed: the data files, the build's folders, the manifest, the
rename of the build, CURRENT, and after CURRENT (17 calls per run on this corpus). A
rebuild and an update both start from a complete index with its dense part, as in use.

Two outcomes are checked at each point:
- SIGKILL: the index folder as the killed process left it;
- power cut: a copy of the folder in which every regular file whose inode was not fsynced
  has lost its data (truncated to 0 bytes), as a file system with delayed allocation does
  after a crash (files present before the run count as durable: the earlier build fsynced
  them). Directory entries are kept (a journalled file system keeps metadata; the
  builds and renames that matter are fsynced anyway).

In each, ``Retriever.open`` (checksums verified) must load a complete build, possibly the
fallback, and find 《劳动法》第五十条 by exact lookup and a hybrid search must answer.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = ["社会法/劳动法(2018-12-29).md", "laws.sqlite3"]
EXTRA = "行政法规/个体工商户条例(2016-02-06).md"


def settings_for(work: Path, index_dir: Path | None = None):
    from legalrag.config import Settings

    return Settings.load(env={}, corpus_dir=work / "corpus",
                         index_dir=index_dir or work / "indexes", tune_questions="",
                         cache_dir=Path(os.environ.get("LEGALRAG_CACHE_DIR",
                                                       Path.home() / ".cache" / "legalrag")))


def child(args: argparse.Namespace) -> None:
    """Run one build/update with a recording, self-killing os.fsync."""
    real = os.fsync
    log = open(args.log, "a", buffering=1)  # noqa: SIM115 - lives as long as the child
    count = 0

    def fsync(fd: int) -> None:
        nonlocal count
        count += 1
        if count == args.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real(fd)
        log.write(f"{os.fstat(fd).st_ino}\n")

    os.fsync = fsync
    from legalrag.index.build import build_index

    if args.no_data_fsync:  # the control: data files not made durable (the old code)
        import legalrag.index.store as store

        store.fsync_tree = lambda root: None

    settings = settings_for(Path(args.work))
    build_index(settings, update=args.mode == "update")
    log.write("done\n")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def power_cut_copy(index: Path, dest: Path, durable: set[int]) -> int:
    """dest: index as after a power cut; returns how many files lost their data."""
    shutil.copytree(index, dest, symlinks=True)
    lost = 0
    for p in dest.rglob("*"):
        src = index / p.relative_to(dest)
        if p.is_file() and not p.is_symlink() and os.stat(src).st_ino not in durable:
            if p.stat().st_size:
                lost += 1
            p.write_bytes(b"")
    return lost


def check(work: Path, index_dir: Path) -> dict:
    from legalrag.errors import LegalRagError
    from legalrag.retrieval.retriever import Retriever

    try:
        r = Retriever.open(settings_for(work, index_dir))
        top = r.search("劳动法第五十条", k=1)[0].article.citation
        hybrid = r.search("拖欠工资怎么办", k=3)
        return {"ok": top == "《劳动法》第五十条" and len(hybrid) == 3,
                "build": r.build_dir.name, "parts": sorted(r.parts),
                "fallback": bool(r.fallback)}
    except LegalRagError as e:
        return {"ok": False, "error": str(e)}


def run(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    from legalrag.index.build import build_index

    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="legalrag-faults-"))
    for rel in BASE:
        (base / "corpus" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "corpus" / rel, base / "corpus" / rel)
    t0 = time.perf_counter()
    build_index(settings_for(base))
    # How many fsync calls a full run of each kind makes (the range of kill points).
    totals = {}
    for mode in ("build", "update"):
        work = prepare(base, mode)
        log = work / "fsync.log"
        subprocess.run([sys.executable, __file__, "--child", mode, "--work", str(work),
                        "--kill-at", "0", "--log", str(log),
                        *(["--no-data-fsync"] if args.no_data_fsync else [])], check=True)
        totals[mode] = sum(1 for line in log.read_text().splitlines() if line != "done")
        shutil.rmtree(work)
    # Seeded points without repeats: every (kind, fsync call) pair once before any twice.
    pairs = [(mode, k) for mode in ("build", "update") for k in range(1, totals[mode] + 1)]
    rng.shuffle(pairs)
    points = [pairs[i % len(pairs)] for i in range(args.points)]
    results = []
    for mode, kill_at in points:
        work = prepare(base, mode)
        corpus_before = snapshot(work / "corpus")
        log = work / "fsync.log"
        # what was on disk before the run is durable (the earlier build fsynced it)
        before = {p.stat().st_ino for p in (work / "indexes").rglob("*") if p.is_file()}
        proc = subprocess.run([sys.executable, __file__, "--child", mode, "--work", str(work),
                               "--kill-at", str(kill_at), "--log", str(log),
                               *(["--no-data-fsync"] if args.no_data_fsync else [])])
        durable = before | {int(x) for x in log.read_text().splitlines() if x.isdigit()}
        killed = proc.returncode == -signal.SIGKILL
        after_kill = check(work, work / "indexes")
        cut = work / "powercut"
        lost = power_cut_copy(work / "indexes", cut, durable)
        after_cut = check(work, cut)
        same_corpus = snapshot(work / "corpus") == corpus_before
        results.append({"mode": mode, "kill_at_fsync": kill_at, "of": totals[mode],
                        "killed": killed, "files_lost_in_power_cut": lost,
                        "sigkill": after_kill, "power_cut": after_cut,
                        "corpus_identical": same_corpus})
        print(json.dumps(results[-1], ensure_ascii=False), file=sys.stderr)
        shutil.rmtree(work)
    shutil.rmtree(base)
    ok = all(r["sigkill"]["ok"] and r["power_cut"]["ok"] and r["corpus_identical"]
             for r in results)
    return {"seed": args.seed, "points": len(results), "no_data_fsync": args.no_data_fsync,
            "fsync_calls_per_run": totals,
            "all_ok": ok, "fallbacks_after_power_cut": sum(r["power_cut"].get("fallback", 0)
                                                           for r in results),
            "seconds": round(time.perf_counter() - t0, 1), "runs": results}


def prepare(base: Path, mode: str) -> Path:
    """A work folder: the base index; for an update, one more law in the corpus."""
    work = Path(tempfile.mkdtemp(prefix=f"legalrag-{mode}-"))
    shutil.copytree(base / "corpus", work / "corpus")
    shutil.copytree(base / "indexes", work / "indexes")
    if mode == "update":
        shutil.copy2(ROOT / "corpus" / EXTRA, work / "corpus" / Path(EXTRA).name)
    return work


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=24)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--no-data-fsync", action="store_true",
                    help="control run: skip the fsync of data files (the old behaviour)")
    ap.add_argument("--child", choices=["build", "update"], help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--kill-at", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--log", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.mode = args.child
        child(args)
        return 0
    report = run(args)
    text = json.dumps(report, ensure_ascii=False, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if report["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
