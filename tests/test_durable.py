"""Durable, recoverable builds and swaps off the request path (issue 14), on a real small
corpus with the real BM25 (dense=False keeps these quick; test_faults.py kills full builds).

- every file of a build and its directories are fsynced before the manifest, the manifest
  before CURRENT;
- the previous complete build is kept, and a build a reader holds is never deleted;
- readers racing a stream of swaps never fail;
- a LiveRetriever loads and warms a new build in the background and swaps in one step.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from conftest import CORPUS, copy_corpus, make_settings

from legalrag.index.build import build_index
from legalrag.index.store import IndexStore
from legalrag.retrieval.live import LiveRetriever
from legalrag.retrieval.retriever import Retriever

BASE = ["社会法/劳动法(2018-12-29).md", "laws.sqlite3"]
EXTRA = "行政法规/个体工商户条例(2016-02-06).md"


@pytest.fixture
def sparse(tmp_path):
    corpus = copy_corpus(tmp_path / "corpus", BASE)
    settings = make_settings(tmp_path, corpus)
    build_index(settings, dense=False)
    return settings, corpus


def toggle(corpus: Path) -> None:
    """Add the extra law, or remove it again: each call makes the next update publish."""
    target = corpus / Path(EXTRA).name
    if target.exists():
        target.unlink()
    else:
        shutil.copy2(CORPUS / EXTRA, target)


def test_every_file_is_fsynced_before_the_manifest_and_the_manifest_before_current(
        sparse, monkeypatch):
    settings, corpus = sparse
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:  # the real fsync, and what it was called on
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    toggle(corpus)
    result = build_index(settings, update=True, dense=False)
    monkeypatch.undo()
    build = result.build_dir
    tmp_dir = str(build.parent / f"tmp-{build.name}")
    manifest_at = synced.index(f"{tmp_dir}/manifest.json.tmp")
    current_at = next(i for i, p in enumerate(synced)
                      if Path(p).name.startswith(".CURRENT."))
    files = [p for p in build.rglob("*") if p.is_file() and p.name != "manifest.json"]
    dirs = [build, *(p for p in build.rglob("*") if p.is_dir())]
    assert files and len(dirs) > 1
    for p in files + dirs:
        rel = p.relative_to(build).as_posix()
        path = tmp_dir if rel == "." else f"{tmp_dir}/{rel}"
        assert path in synced[:manifest_at], f"{rel} was not fsynced before the manifest"
    assert manifest_at < current_at
    # the rename of the build is durable (its parent fsynced) before CURRENT names it
    assert str(build.parent) in synced[manifest_at:current_at]
    assert str(settings.index_dir) in synced[current_at:]


def test_the_previous_build_is_kept_and_a_leased_build_outlives_swaps(sparse):
    settings, corpus = sparse
    store = IndexStore(settings.index_dir)
    held = Retriever.open(settings)  # a reader of the first build
    first = held.build_dir
    names = [first.name]
    for _ in range(3):
        toggle(corpus)
        names.append(build_index(settings, update=True, dense=False).build_dir.name)
    on_disk = {p.name for p in store.builds.iterdir()}
    # live, previous, and the one still held (older than both)
    assert on_disk == {names[-1], names[-2], first.name}
    assert held.search("劳动法第五十条", k=1)[0].article.citation == "《劳动法》第五十条"
    held.opened.release()
    del held
    toggle(corpus)
    build_index(settings, update=True, dense=False)
    assert first.name not in {p.name for p in store.builds.iterdir()}
    assert len(list(store.builds.iterdir())) == 2


def test_readers_racing_swaps_never_fail(sparse):
    """A CLI retrieve/eval opening the index while updates publish one after another: every
    open succeeds and answers (no "index file … missing", no FileNotFoundError)."""
    settings, corpus = sparse
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for _ in range(6):
                toggle(corpus)
                build_index(settings, update=True, dense=False)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            done.set()

    t = threading.Thread(target=writer)
    t.start()
    opened = 0
    while not done.is_set() or opened < 3:
        try:
            r = Retriever.open(settings)
            assert r.fallback == ""
            assert r.search("劳动法第五十条", k=1)[0].article.citation == "《劳动法》第五十条"
            opened += 1
        except BaseException as e:  # noqa: BLE001 - any failure fails the test
            errors.append(e)
            break
    t.join()
    assert errors == []
    assert opened >= 3


def test_live_retriever_swaps_in_the_background_after_warming(sparse):
    settings, corpus = sparse
    live = LiveRetriever(settings)
    warmed: list[str] = []
    gate = threading.Event()

    def slow_warmer(r: Retriever) -> None:
        warmed.append(r.build_dir.name)
        if len(warmed) > 1:
            gate.wait(60)  # the new build is being warmed: questions must not wait

    live.add_warmer(slow_warmer)
    old = live.get()
    toggle(corpus)
    new_name = build_index(settings, update=True, dense=False).build_dir.name
    live._checked = 0.0  # look at CURRENT on the next get
    # While the new build warms, every get() answers at once, from the old build.
    for _ in range(5):
        assert live.get() is old
        live._checked = 0.0
    gate.set()
    new = live.refresh()
    assert new.build_dir.name == new_name and warmed == [old.build_dir.name, new_name]
    assert live.get() is new and live.swaps == 1
    assert new.lookup("个体工商户条例", 2)


def test_a_watched_live_retriever_moves_to_a_new_build_without_a_question(sparse):
    """The chat server's retriever watches CURRENT: a published build is loaded and serves
    even while no question arrives (all sessions waiting in the model queue)."""
    settings, corpus = sparse
    live = LiveRetriever(settings)
    old = live.get()
    live.watch(interval=0.1)
    toggle(corpus)
    new_name = build_index(settings, update=True, dense=False).build_dir.name
    for _ in range(600):  # up to a minute on a busy machine; not a timing assertion
        if live.swaps:
            break
        threading.Event().wait(0.1)
    assert live.swaps == 1 and live._current is not old
    assert live._current.build_dir.name == new_name
