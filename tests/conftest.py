"""Shared fixtures: a small real corpus (copied from corpus/) and an index built from it
with the real embedding model, FAISS and BM25. Built once per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"

# Real statute files covering the cases the tests need: 民法典 split over files, 之一
# articles (刑法), several versions of one law (公司法), a law marked expired in
# laws.sqlite3, and a regulation STARD cites (个体工商户条例).
SMALL_CORPUS = [
    "社会法/劳动法(2018-12-29).md",
    "社会法/劳动合同法(2012-12-28).md",
    "民法典/总则.md",
    "民法典/婚姻家庭编.md",
    "民法典/附则.md",
    "刑法/刑法.md",
    "民法商法/公司法(2018-10-26).md",
    "民法商法/公司法(2023-12-29).md",
    "司法解释/最高人民法院关于审理劳动争议案件适用法律若干问题的解释(2001-04-16).md",
    "行政法规/个体工商户条例(2016-02-06).md",
    "laws.sqlite3",
]


def copy_corpus(dest: Path, files: list[str] = SMALL_CORPUS) -> Path:
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(CORPUS / rel, target)
    return dest


def make_settings(tmp: Path, corpus: Path, **overrides):
    from legalrag.config import Settings

    cache = os.environ.get("LEGALRAG_CACHE_DIR")
    # The query-encoder tune stage is off unless a test asks for it (test_tune.py does).
    overrides.setdefault("tune_questions", "")
    # Builds embed every text unless a test asks for shipped vectors (test_shipped.py).
    overrides.setdefault("shipped_vectors", "")
    overrides.setdefault("cache_dir", Path(cache) if cache else None)
    overrides.setdefault("data_dir", tmp / "userdata")  # conversations (web/history.py)
    return Settings.load(env={}, corpus_dir=corpus, index_dir=tmp / "indexes", **overrides)


def ranking_from_stages(r, query: str, rerank: bool) -> list[int]:
    """Article rows in the order a retriever's own stages give them: the reranker's order
    of the pool (rerank) or the fused order, without cross-references or the
    cross-encoder; what search() must return when those are off."""
    from legalrag.retrieval.rerank import features

    named = r.named_rows(r.lookup_query(query))
    if named and r.rank_by_named:  # ranked as like the article the question names
        query, vec = r.named_query(query, named)
    else:
        if r.glossary is not None:  # the statute terms of its everyday words after it
            query = r.glossary.expand(query)
        vec = r.embedder.encode([query])
    rankings, raw = r.candidates(query, 300 if rerank else 100, vec=vec)
    if rerank:
        pool = r.pool(query, rankings, raw, vec)
        return [pool.ids[j] for j in r.fusion.reranker.order(features(pool, r.meta, query))]
    return [d for d, _ in r.fuse(rankings)]


@pytest.fixture(scope="session")
def small_settings(tmp_path_factory):
    """Settings for the small real corpus, with its index built (all three parts)."""
    from legalrag.index.build import build_index

    tmp = tmp_path_factory.mktemp("small")
    corpus = copy_corpus(tmp / "corpus")
    settings = make_settings(tmp, corpus)
    build_index(settings)
    return settings


@pytest.fixture(scope="session")
def small_index(small_settings):
    """A Retriever over the small real corpus."""
    from legalrag.retrieval.retriever import Retriever

    return Retriever.open(small_settings)


# Fixtures that load a model or build an index. A test marked `fast` (the tier that
# `bash scripts/test.sh --fast` runs) must not use them; collection fails if one does, so
# the fast tier cannot grow slow by accident.
HEAVY_FIXTURES = frozenset({
    "small_settings", "small_index", "smol", "smol_settings", "assistant", "kb", "kb_settings",
    "evil_index", "server_url", "reranked", "questions", "settings", "env", "page",
})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("fast") is None:
            continue
        heavy = HEAVY_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if heavy:
            raise pytest.UsageError(f"{item.nodeid} is marked fast but uses {sorted(heavy)}: "
                                    "drop the mark or the fixture")


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright (the browser tests' one launcher)."""
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
