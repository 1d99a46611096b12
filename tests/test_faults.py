"""Faults: `legalrag index build` and `legalrag index update` killed for real.

Each run is the real command in a child process on a small corpus in tmp_path; the test
watches its progress (stderr) and the index directory, and sends SIGKILL at points spread
over the stages: start-up and parsing, segmentation, embedding, writing the new build, right
after the swap of CURRENT, and the query-encoder tune stage that follows a full build. The
points are drawn from a seeded generator (set LEGALRAG_FAULT_SEED to explore others) and
are placed by progress (a stage's bar at x %), not by the clock, so they land inside the
stage however busy the machine is. After every kill:

- the index named by CURRENT is the previous one, or a complete newer one: it opens with
  every checksum verified and answers a cited question with the cited article;
- the writer lock is free, and the corpus is byte-for-byte what it was;

and after the kills the next run succeeds and leaves nothing behind (one build directory,
no temporary files). Damaged indexes (a truncated manifest, a missing or changed file, a
CURRENT that points nowhere) are refused with the fix named, and the fix works; truncated
data files are in tests/test_index.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CORPUS, ROOT, copy_corpus, make_settings
from test_bad_input import corpus_snapshot

from legalrag import cli
from legalrag.config import Settings
from legalrag.errors import IndexCorruptError, IndexMissingError, LegalRagError
from legalrag.index.build import build_index
from legalrag.index.store import IndexStore, read_manifest
from legalrag.retrieval.retriever import Retriever

BASE = ["社会法/劳动法(2018-12-29).md", "行政法规/个体工商户条例(2016-02-06).md",
        "laws.sqlite3"]
ADDED = "社会法/劳动合同法(2012-12-28).md"
SEED = int(os.environ.get("LEGALRAG_FAULT_SEED", "6"))
RUN_TIMEOUT = 240.0  # seconds for one run of the command; a hung build fails the test
POLL = 0.004


class Probe:
    """A running `legalrag index …` child and what can be seen of it from outside."""

    def __init__(self, settings: Settings, action: str) -> None:
        self.index_dir = settings.index_dir
        self.initial = IndexStore(self.index_dir).current_name()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            command(settings, action), cwd=settings.index_dir.parent, env=child_env(settings),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._err: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        while chunk := self.proc.stderr.read1(4096):
            self._err.append(chunk)

    @property
    def stderr(self) -> str:
        return b"".join(self._err).decode("utf-8", "replace")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def current(self) -> str | None:
        return IndexStore(self.index_dir).current_name()

    def unfinished(self) -> list[Path]:
        builds = self.index_dir / "builds"
        return sorted(builds.glob("tmp-*")) if builds.exists() else []

    def published(self) -> bool:
        return self.current() not in (None, self.initial)

    def phase(self) -> str:
        """Where the run is, as far as the outside can tell."""
        for tmp in reversed(self.unfinished()):
            files = {p.name for p in tmp.iterdir()}
            if "manifest.json" in files:
                return "before publish (manifest written)"
            if "tune" in self.stderr:
                return "tune (dense part live, query encoder training)"
            if "dense.faiss" in files:
                return "writing the dense index"
            if files:
                stage = "embed" if "embed" in self.stderr else "bm25"
                return f"{stage} (new build has {len(files)} files)"
        if self.published():
            return "after publish"
        return next((s for s in ("embed", "segment") if s in self.stderr), "start-up/parse")


@dataclass
class Kill:
    action: str
    trigger: str
    phase: str
    at: float  # seconds after start
    returncode: int


Trigger = Callable[[Probe], bool]


def at_start(p: Probe) -> bool:
    return True


def stage(name: str) -> Trigger:
    return lambda p: name in p.stderr


def new_build_has(name: str) -> Trigger:
    return lambda p: any((t / name).exists() for t in p.unfinished())


def published(p: Probe) -> bool:
    return p.published()


def progress_at(name: str, fraction: float, *, after_publish: bool = False) -> Trigger:
    """When the stage's progress bar shows at least fraction done (but not 100 %): a point
    inside the stage however fast or slow this machine is today."""
    pattern = re.compile(rf"{name}:\s+(\d+)%")

    def trigger(p: Probe) -> bool:
        shown = pattern.findall(p.stderr)
        if not shown or (after_publish and not p.published()):
            return False
        return fraction * 100 <= int(shown[-1]) < 100

    return trigger


def tuned_published(p: Probe) -> bool:
    if not p.published():
        return False
    try:
        manifest = json.loads((IndexStore(p.index_dir).current() / "manifest.json").read_text())
    except (OSError, ValueError, LegalRagError):
        return False
    return "tuned-queries" in manifest.get("parts", [])


def kill_when(settings: Settings, action: str, name: str, trigger: Trigger, delay: float
              ) -> Kill:
    """Run `legalrag index <action>`, SIGKILL it delay seconds after trigger holds."""
    probe = Probe(settings, action)
    fired: float | None = None
    phase = "finished before the kill"
    while probe.proc.poll() is None:
        assert probe.elapsed < RUN_TIMEOUT, f"{action} ran for {RUN_TIMEOUT} s:\n{probe.stderr}"
        if fired is None and trigger(probe):
            fired = time.monotonic()
        if fired is not None and time.monotonic() - fired >= delay:
            phase = probe.phase()
            probe.proc.kill()
            break
        time.sleep(POLL)
    at = probe.elapsed
    code = probe.proc.wait(timeout=30)
    probe._reader.join(timeout=10)
    if code not in (0, -9):
        pytest.fail(f"{action} failed on its own (exit {code}):\n{probe.stderr[-2000:]}")
    return Kill(action, name, phase, round(at, 2), code)


def command(settings: Settings, action: str) -> list[str]:
    return [sys.executable, "-m", "legalrag", "--corpus", str(settings.corpus_dir),
            "--index-dir", str(settings.index_dir), "index", action]


def child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGALRAG_")}
    # The tune stage (a query encoder trained after the dense part is live) takes longer
    # than the rest of a small build; it runs only when a test asks for it by path.
    tune = Path(settings.tune_questions)
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
               LEGALRAG_CACHE_DIR=str(settings.cache_dir),
               LEGALRAG_TUNE_QUESTIONS=str(tune) if tune.is_absolute() else "",
               LEGALRAG_SHIPPED_VECTORS="")  # every text is embedded, so faults can hit it
    return env


def isolated_cache(tmp: Path, shared: Path) -> Path:
    """A cache folder of the test's own. It reuses the base model's ONNX export (minutes to
    make) but trains and exports query encoders afresh, so the tune stage really runs each
    time, and whatever a killed run leaves in the cache stays in tmp_path."""
    cache = tmp / "cache"
    (cache / "onnx").mkdir(parents=True)
    for entry in sorted((shared / "onnx").glob("*")) if (shared / "onnx").is_dir() else []:
        if entry.name.startswith("m3e-small-") and ".tmp" not in entry.name:
            (cache / "onnx" / entry.name).symlink_to(entry)
    return cache


def run_to_end(settings: Settings, action: str) -> str:
    done = subprocess.run(command(settings, action), cwd=settings.index_dir.parent,
                          env=child_env(settings), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def top(settings: Settings, query: str, k: int = 5) -> list[str]:
    return [h.article.citation for h in Retriever.open(settings).search(query, k=k)]


def assert_serving(settings: Settings, kill: Kill, before: str | None, answers: list[str],
                   corpus: dict) -> None:
    """The live index after a kill: the previous build, or a complete newer one."""
    store = IndexStore(settings.index_dir)
    live = store.current_name()
    assert live is not None, kill
    manifest = read_manifest(store.current(), verify=True)  # every checksum
    # The previous build, or one the killed run published: a rebuild or update of a full
    # index publishes complete with its dense part (the tuned encoder may follow later).
    assert {"lookup", "bm25", "dense"} <= set(manifest["parts"]), kill
    retriever = Retriever.open(settings)
    assert retriever.search("劳动法第五十条", k=1)[0].article.citation == "《劳动法》第五十条"
    if live == before:
        assert top(settings, "拖欠工资怎么办") == answers, kill
    with store.lock():  # the kernel released the dead writer's lock
        pass
    assert corpus_snapshot(settings.corpus_dir) == corpus, kill


def assert_clean(settings: Settings) -> None:
    """No unfinished build and no stray CURRENT; at most the live build and the previous
    complete one (kept as the fallback, issue 14)."""
    store = IndexStore(settings.index_dir)
    builds = sorted(p.name for p in (settings.index_dir / "builds").iterdir())
    assert store.current_name() in builds and len(builds) <= 2
    assert builds == sorted(p.name for p in store.complete_builds())
    assert sorted(p.name for p in settings.index_dir.iterdir()
                  if p.name != "readers") == ["CURRENT", "LOCK", "builds"]


@pytest.mark.slow
def test_killed_builds_and_updates_leave_the_previous_index_serving(tmp_path):
    rng = random.Random(SEED)
    corpus = copy_corpus(tmp_path / "corpus", BASE)
    settings = make_settings(tmp_path, corpus)
    snapshot = corpus_snapshot(corpus)
    kills: list[Kill] = []

    # A first build killed before anything is live: no index, and the message says what to do.
    kills.append(kill_when(settings, "build", "first build, start-up", at_start,
                           rng.uniform(0.05, 0.3)))
    assert kills[-1].phase == "start-up/parse"
    with pytest.raises(IndexMissingError, match="legalrag index build"):
        Retriever.open(settings)
    # A first build killed while embedding: BM25 and exact lookup were already live.
    kills.append(kill_when(settings, "build", "first build, embedding",
                           progress_at("embed", rng.uniform(0, 0.8), after_publish=True), 0.0))
    assert {"lookup", "bm25"} <= Retriever.open(settings).parts
    assert corpus_snapshot(corpus) == snapshot

    run_to_end(settings, "build")
    assert_clean(settings)
    assert "dense" in Retriever.open(settings).parts

    plan: list[tuple[str, str, Trigger, float]] = [
        ("build", "start-up/parse", at_start, rng.uniform(0.05, 0.3)),
        ("build", "segmentation", stage("segment"), rng.uniform(0.0, 0.03)),
        ("build", "embedding", progress_at("embed", rng.uniform(0, 0.8)), 0.0),
        ("build", "writing the dense index", new_build_has("dense.faiss"), 0.0),
        ("build", "just after publish", published, 0.0),
    ]
    for action, name, trigger, delay in plan:
        live = IndexStore(settings.index_dir).current_name()
        answers = top(settings, "拖欠工资怎么办")
        kill = kill_when(settings, action, name, trigger, delay)
        kills.append(kill)
        assert_serving(settings, kill, live, answers, snapshot)

    run_to_end(settings, "build")
    assert_clean(settings)

    # Updates: a law is added; killed updates leave the old index (without it) serving.
    shutil.copy2(CORPUS / ADDED, corpus / ADDED.split("/")[-1])
    snapshot = corpus_snapshot(corpus)
    for name, trigger, delay in [
        ("update, segmentation", stage("segment"), rng.uniform(0.0, 0.03)),
        ("update, embedding", progress_at("embed", rng.uniform(0, 0.8)), 0.0),
        ("update, just after publish", published, 0.0),
    ]:
        live = IndexStore(settings.index_dir).current_name()
        answers = top(settings, "拖欠工资怎么办")
        kill = kill_when(settings, "update", name, trigger, delay)
        kills.append(kill)
        assert_serving(settings, kill, live, answers, snapshot)
        if IndexStore(settings.index_dir).current_name() == live:
            assert "《劳动合同法》第四十七条" not in top(settings, "劳动合同法第四十七条", 3)

    out = run_to_end(settings, "update")
    assert "up to date" in out or "embedded" in out
    assert_clean(settings)
    assert top(settings, "劳动合同法第四十七条", 1) == ["《劳动合同法》第四十七条"]
    assert "dense" in Retriever.open(settings).parts
    assert corpus_snapshot(corpus) == snapshot

    # The tune stage: killed while the query encoder trains (the new dense build is already
    # live and serves with the base model) and right after the tuned build went live.
    tuned = dataclasses.replace(settings, tune_questions=str(ROOT / "data/eval/stard_train.jsonl"),
                                cache_dir=isolated_cache(tmp_path, settings.cache_dir))
    for name, trigger, delay in [
        ("build, tuning", progress_at("tune", rng.uniform(0, 0.7)), 0.0),
        ("build, just after the tuned publish", tuned_published, 0.0),
    ]:
        live = IndexStore(settings.index_dir).current_name()
        answers = top(tuned, "拖欠工资怎么办")
        kill = kill_when(tuned, "build", name, trigger, delay)
        kills.append(kill)
        assert_serving(tuned, kill, live, answers, snapshot)
    run_to_end(tuned, "update")
    assert_clean(settings)
    assert "tuned-queries" in Retriever.open(tuned).parts

    report = "\n".join(f"{k.action:>6} {k.trigger:<28} killed at {k.at:6.2f} s in "
                       f"{k.phase} (exit {k.returncode})" for k in kills)
    print(f"\nseed {SEED}:\n{report}")
    real = [k for k in kills if k.returncode == -9]
    assert len(real) >= 8, report  # the timed and stage triggers always kill mid-run
    phases = " ".join(k.phase for k in real)
    for stage_seen in ("start-up/parse", "embed", "tune", "after publish"):
        assert stage_seen in phases, report


def test_a_leftover_from_a_crash_is_cleaned_by_the_next_build(tmp_path):
    """What a kill can leave in the index folder (an unfinished build, a renamed build that
    never went live, a half-written CURRENT) is removed by the next run, under its lock."""
    settings = make_settings(tmp_path, copy_corpus(tmp_path / "corpus", BASE[:1]))
    build_index(settings, dense=False)
    live = IndexStore(settings.index_dir).current_name()
    builds = settings.index_dir / "builds"
    (builds / "tmp-20240101-000000-1-0").mkdir()
    (builds / "tmp-20240101-000000-1-0" / "articles.json").write_text("[", encoding="utf-8")
    shutil.copytree(builds / live, builds / "20240101-000000-2-0")
    (settings.index_dir / ".CURRENT.12345").write_text("20240101-000000-2-0", encoding="utf-8")
    assert Retriever.open(settings).build_dir.name == live  # leftovers do not disturb reading
    build_index(settings, update=True, dense=False)  # up to date, and cleans up
    assert_clean(settings)


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, different content
    path.write_bytes(bytes(data))


DAMAGE = {
    "manifest truncated": (lambda b: (b / "manifest.json").write_bytes(
        (b / "manifest.json").read_bytes()[:200]), "manifest.json is damaged"),
    "a file deleted": (lambda b: (b / "tokens.json").unlink(), "tokens.json is missing"),
    "one byte changed": (lambda b: _flip_a_byte(b / "articles.json"),
                         "articles.json is corrupted or truncated (checksum mismatch)"),
}
# CURRENT itself damaged while its build is fine: readers fall back (test below).
CURRENT_DAMAGE = {
    "CURRENT names a missing build": (lambda b: (b.parents[1] / "CURRENT").write_text(
        "20200101-000000-1-0\n", encoding="utf-8"), "which is missing"),
    "CURRENT empty": (lambda b: (b.parents[1] / "CURRENT").write_text("", encoding="utf-8"),
                      "names build '', which is missing"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_index_is_refused_with_the_fix_and_the_fix_works(tmp_path, capsys, damage):
    """Beyond the truncations of test_index.py: the manifest itself, a missing file, a
    same-size change, a CURRENT that points nowhere. Each is one readable error naming
    `legalrag index build`, from the library and the CLI, and that command repairs it."""
    settings = make_settings(tmp_path, copy_corpus(tmp_path / "corpus", BASE[:1]))
    build_index(settings, dense=False)
    harm, message = DAMAGE[damage]
    harm(IndexStore(settings.index_dir).current())
    with pytest.raises(IndexCorruptError, match="legalrag index build") as err:
        Retriever.open(settings)
    assert message in str(err.value)
    argv = ["--corpus", str(settings.corpus_dir), "--index-dir", str(settings.index_dir)]
    assert cli.main([*argv, "retrieve", "劳动法第五十条"]) == 2
    out = capsys.readouterr().err
    assert out.startswith("legalrag: error: ") and out.count("\n") == 1
    assert "(fix: run `legalrag index build`)" in out
    assert cli.main([*argv, "index", "build", "--no-dense", "-q"]) == 0
    hits = Retriever.open(settings).search("劳动法第五十条", k=1)
    assert hits[0].article.citation == "《劳动法》第五十条"
    assert_clean(settings)


@pytest.mark.parametrize("damage", list(CURRENT_DAMAGE))
def test_a_damaged_current_falls_back_to_the_newest_complete_build(tmp_path, capsys, damage):
    """CURRENT pointing nowhere (what a power cut on a disk that ignores fsync, or a hand
    edit, can leave): readers serve the newest complete build and say so, in the log, in
    `legalrag index info` and in the retriever's status; the next update repairs CURRENT."""
    settings = make_settings(tmp_path, copy_corpus(tmp_path / "corpus", BASE[:1]))
    build_index(settings, dense=False)
    live = IndexStore(settings.index_dir).current_name()
    harm, message = CURRENT_DAMAGE[damage]
    harm(IndexStore(settings.index_dir).builds / live)
    r = Retriever.open(settings)
    assert r.build_dir.name == live and message in r.fallback
    assert r.status()["fallback"] == r.fallback
    assert r.search("劳动法第五十条", k=1)[0].article.citation == "《劳动法》第五十条"
    argv = ["--corpus", str(settings.corpus_dir), "--index-dir", str(settings.index_dir)]
    assert cli.main([*argv, "index", "info"]) == 0
    assert f"serving the newest complete build {live} instead" in capsys.readouterr().out
    build_index(settings, update=True, dense=False)
    assert Retriever.open(settings).fallback == ""
