"""Bringing the index up when the server starts: decide what the index needs, build or
update it in the background, and wait only until its first part (BM25 + exact lookup) is
live, so the chat opens long before the embeddings are done."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from legalrag.config import Settings
from legalrag.errors import IndexBusyError, LegalRagError
from legalrag.index.build import build_index
from legalrag.index.corpus import corpus_files, file_sha256
from legalrag.index.embed import embedder_identity
from legalrag.index.store import IndexStore, check_compatible
from legalrag.progress import ProgressFactory
from legalrag.web.jobs import IndexJobs
from legalrag.web.kb import describe

log = logging.getLogger(__name__)


def index_state(settings: Settings, store: IndexStore | None = None) -> str:
    """What a start has to do with the index: ``current`` (nothing), ``stale`` (an
    update: the corpus files changed or the dense part is missing), ``missing`` or
    ``incompatible`` (built by another format, embedding model or segmenter: a full
    rebuild). Cheaper than asking build_index, which loads the whole previous index
    before deciding."""
    store = store or IndexStore(settings.index_dir)
    if store.current_name() is None:
        return "missing"
    try:
        # CURRENT's build, or the newest complete one when CURRENT's is damaged: then an
        # update (which repairs CURRENT) is enough, not a rebuild.
        opened = store.open_live(verify=False)
        opened.release()
        build, manifest = opened.path, opened.manifest
        check_compatible(manifest, embedder_identity(settings), build)
    except LegalRagError:
        return "incompatible"
    if opened.fallback or "dense" not in manifest.get("parts", ()):
        return "stale"
    root = Path(settings.corpus_dir)
    try:
        files = {p.relative_to(root).as_posix(): file_sha256(p) for p in corpus_files(root)}
    except OSError:
        return "stale"
    return "current" if files == manifest.get("corpus", {}).get("files") else "stale"


def start_update(settings: Settings, jobs: IndexJobs, progress: ProgressFactory | None = None,
                 on_error: Callable[[BaseException], None] | None = None) -> threading.Thread:
    """Build the index (first launch), rebuild it (incompatible) or bring it up to date,
    in a background thread.

    Either way the sparse part (BM25 + exact lookup) goes live first: build_index does
    that on a first build; a rebuild first builds the sparse part alone, then adds the
    embeddings as an update. So ``wait_until_live`` returns long before the embeddings
    are done.
    """
    state = index_state(settings)
    title = {"missing": "首次建立索引", "incompatible": "重建索引（与当前配置不符）"}.get(
        state, "更新索引")

    def run() -> None:
        try:
            with jobs.run("build", title):
                factory = jobs.factory(progress)
                if state == "incompatible":
                    build_index(settings, dense=False, progress=factory)
                result = build_index(settings, update=True, progress=factory)
            msg = "索引已是最新" if result.up_to_date else f"{title}完成：{describe(result)}"
            jobs.finished(msg)
            log.info("%s", msg)
        except IndexBusyError as e:
            log.warning("index not brought up to date at start: %s", e)
        except BaseException as e:  # reported in the status panel and by on_error
            log.error("index build failed: %s", e)
            if on_error is not None:
                on_error(e)

    thread = threading.Thread(target=run, name="legalrag-index", daemon=True)
    thread.start()
    return thread


def wait_until_live(store: IndexStore, thread: threading.Thread, since: str | None = None,
                    poll: float = 0.2) -> bool:
    """Block until a usable index is live: one other than ``since`` (the build that was
    live when an incompatible index was being rebuilt), or any when since is None.
    Returns False when the build thread ended without one."""
    def ready() -> bool:
        name = store.current_name()
        return name is not None and name != since

    while not ready():
        if not thread.is_alive():
            return ready()
        time.sleep(poll)
    return True
