"""An upload racing a CLI `index update` (issue 14): after each of N seeded runs the
corpus and the published index agree, and the upload's outcome is the truth.

    .venv/bin/python bench/upload_race.py                 # 50 runs
    .venv/bin/python bench/upload_race.py --runs 10 --seed 3 --out x.json

Each run: a national law is added to or removed from corpus/ and `python -m legalrag index
update` starts (a separate process, like an administrator's); after a seeded delay the
knowledge base (the UI's, in this process) adds an uploaded statute, waiting 0 s or up to
60 s (seeded) for the writer lock. Then:
- the files of the corpus that parse are exactly the files the published manifest lists
  (no law indexed that is not in the corpus, none in the corpus missing from the index);
- the upload was reported added if and only if its file is in the corpus and the index;
- every few runs a previous upload is removed again through the knowledge base, racing
  the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ["社会法/劳动法(2018-12-29).md", "laws.sqlite3"]
TOGGLE = "行政法规/个体工商户条例(2016-02-06).md"


def statute(i: int) -> str:
    return (f"# 星河市第{i}号示范条例\n\n第一条 为了规范示范事项，制定本条例。\n"
            f"第二条 本条例自公布之日起施行，编号{i}。\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from legalrag.config import Settings
    from legalrag.errors import IndexBusyError, LegalRagError
    from legalrag.index.build import build_index
    from legalrag.index.corpus import parse_corpus
    from legalrag.index.store import IndexStore
    from legalrag.retrieval.live import LiveRetriever
    from legalrag.web.kb import KnowledgeBase
    from legalrag.web.uploads import Upload

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="legalrag-race-"))
    for rel in FILES:
        (work / "corpus" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "corpus" / rel, work / "corpus" / rel)
    env = {"LEGALRAG_CORPUS_DIR": str(work / "corpus"),
           "LEGALRAG_INDEX_DIR": str(work / "indexes"), "LEGALRAG_TUNE_QUESTIONS": ""}
    settings = Settings.load(env=env)
    build_index(settings)
    live = LiveRetriever(settings)
    store = IndexStore(settings.index_dir)
    cli_env = {**os.environ, **env}
    toggle = work / "corpus" / Path(TOGGLE).name
    rows = []
    added: list[str] = []
    t_start = time.perf_counter()
    for run in range(args.runs):
        if toggle.exists():
            toggle.unlink()
        else:
            shutil.copy2(ROOT / "corpus" / TOGGLE, toggle)
        delay = rng.uniform(0.0, 6.0)
        wait = rng.choice([0.0, 60.0])
        remove = bool(added) and rng.random() < 0.25
        kb = KnowledgeBase(settings, live, lock_wait=wait)
        cli = subprocess.Popen([sys.executable, "-m", "legalrag", "index", "update", "-q"],
                               env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(delay)
        outcome, reason, target = "", "", ""
        try:
            if remove:
                target = added.pop(rng.randrange(len(added)))
                kb.remove(target)
                outcome = "removed"
            else:
                src = work / f"upload-{run}.md"
                src.write_text(statute(run), encoding="utf-8")
                plan = kb.check_uploads([Upload(f"星河市第{run}号示范条例.md", src)])
                target = plan.checks[0].target
                kb.add(plan)
                outcome = "added"
                added.append(target)
        except IndexBusyError as e:
            outcome, reason = "busy", e.code
            if remove:
                added.append(target)
        except LegalRagError as e:
            outcome, reason = "refused", f"{e.code}: {e}"
        cli_err = cli.communicate(timeout=600)[1].decode()
        cli_rc = cli.returncode
        # what a final look sees: corpus files that parse vs. the published manifest
        report = parse_corpus(settings.corpus_dir)
        manifest = store.open_live(verify=True)
        manifest.release()
        indexed = set(manifest.manifest["corpus"]["files"])
        in_corpus = set(report.file_hashes)
        agree = indexed == in_corpus and all(
            manifest.manifest["corpus"]["files"][f] == report.file_hashes[f] for f in indexed)
        on_disk = (settings.corpus_dir / target).exists() if target else False
        truthful = ((outcome == "added" and on_disk and target in indexed)
                    or (outcome == "removed" and not on_disk and target not in indexed)
                    or (outcome in ("busy", "refused") and (on_disk == remove)
                        and ((target in indexed) == remove)))
        rows.append({"run": run, "delay_s": round(delay, 2), "lock_wait_s": wait,
                     "action": "remove" if remove else "add", "outcome": outcome,
                     "reason": reason, "cli_rc": cli_rc,
                     "cli_busy": "another build or update" in cli_err,
                     "corpus_and_index_agree": agree, "outcome_truthful": truthful})
        print(json.dumps(rows[-1], ensure_ascii=False), file=sys.stderr)
    ok = all(r["corpus_and_index_agree"] and r["outcome_truthful"] for r in rows)
    summary = {
        "runs": len(rows), "all_ok": ok, "seed": args.seed,
        "agree": sum(r["corpus_and_index_agree"] for r in rows),
        "truthful": sum(r["outcome_truthful"] for r in rows),
        "outcomes": {k: sum(r["outcome"] == k for r in rows)
                     for k in ("added", "removed", "busy", "refused")},
        "cli_refused_busy": sum(r["cli_busy"] for r in rows),
        "seconds": round(time.perf_counter() - t_start, 1), "rows": rows,
    }
    text = json.dumps(summary, ensure_ascii=False, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
