"""The retriever a long-running process (the chat server) keeps: it serves the live index
and moves to a newer build when ``CURRENT`` changes, without making anyone wait for it.

A swap happens off the request path (issue 14): when ``get`` notices a new build, a
background thread opens it (checksums, articles, BM25, FAISS), warms it (the query
encoder loaded, exported to ONNX if it is new; whatever the registered warmers build, such
as the answer stage's citation-check tables), and only then replaces the old retriever in
one assignment. Until then every question is answered by the old build, whose files its
lease keeps on disk.

    >>> live = LiveRetriever(settings)                  # doctest: +SKIP
    >>> live.add_warmer(lambda r: r.derived("facts", lambda: build(r.articles)))  # doctest: +SKIP
    >>> live.get().search("试用期多久")                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from legalrag.config import Settings
from legalrag.errors import LegalRagError
from legalrag.index.store import IndexStore
from legalrag.retrieval.retriever import Retriever

log = logging.getLogger(__name__)

Warmer = Callable[[Retriever], object]
CHECK_SECONDS = 1.0  # how often get() looks at CURRENT


class LiveRetriever:
    """Serves the live index and switches to a newer build when CURRENT changes.

    The UI and server keep one of these: during `index update` they keep answering from the
    old build; the new one is loaded and warmed in the background and takes over at once.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = IndexStore(settings.index_dir)
        self._current: Retriever | None = None
        self._lock = threading.Lock()  # first load, and starting a loader
        self._checked = 0.0
        self._loader: threading.Thread | None = None
        self._loading: str | None = None  # the CURRENT name the loader is opening
        self._failed: dict[str, str] = {}  # CURRENT name -> why it could not be loaded
        self._warmers: list[Warmer] = []
        self._watcher: threading.Thread | None = None
        self.swaps = 0

    def add_warmer(self, warmer: Warmer) -> None:
        """Run warmer(retriever) on every new build before it serves (and on the one
        serving now, in the caller's thread)."""
        self._warmers.append(warmer)

    def get(self) -> Retriever:
        """The retriever to answer with now; never waits for a swap (only for the very
        first load, when there is nothing to serve yet)."""
        current = self._current
        if current is None:
            with self._lock:
                if self._current is None:
                    self._current = self._open()
                return self._current
        now = time.monotonic()
        if now - self._checked > CHECK_SECONDS:
            self._checked = now
            self._maybe_start(current)
        return current

    def watch(self, interval: float = CHECK_SECONDS) -> None:
        """Look at CURRENT every interval seconds in a daemon thread, so a new build is
        loaded and warmed as soon as it is published, not when the next question comes
        (a server whose sessions all wait in the model queue asks nothing for a while)."""
        if self._watcher is not None:
            return

        def loop() -> None:
            while True:
                time.sleep(interval)
                current = self._current
                if current is not None:
                    try:
                        self._maybe_start(current)
                    except OSError:  # the index folder being replaced: next round
                        pass

        self._watcher = threading.Thread(target=loop, name="legalrag-index-watch",
                                         daemon=True)
        self._watcher.start()

    def refresh(self, timeout: float = 60.0) -> Retriever:
        """Look at CURRENT now and wait (up to timeout) until its build serves; for a
        writer in this process that wants its change visible when it returns."""
        if self._current is None:
            return self.get()
        self._checked = time.monotonic()
        loader = self._maybe_start(self._current)
        if loader is not None:
            loader.join(timeout)
        return self._current

    @property
    def error(self) -> str:
        """Why the newest build could not be loaded ('' when it serves)."""
        name = self.store.current_name()
        return self._failed.get(name or "", "")

    def _maybe_start(self, current: Retriever) -> threading.Thread | None:
        name = self.store.current_name()
        if not name or name == current.build_dir.name or name in self._failed:
            return self._loader if self._loading == name else None
        with self._lock:
            if self._loader is not None and self._loader.is_alive():
                return self._loader
            self._loading = name
            self._loader = threading.Thread(target=self._swap, args=(name,),
                                            name="legalrag-index-swap", daemon=True)
            self._loader.start()
            return self._loader

    def _open(self) -> Retriever:
        retriever = Retriever.open(self.settings)
        for warm in self._warmers:
            warm(retriever)
        return retriever

    def _swap(self, name: str) -> None:
        t0 = time.perf_counter()
        try:
            retriever = Retriever.open(self.settings)
            retriever.warm_up()
            for warm in self._warmers:
                warm(retriever)
        except LegalRagError as e:
            log.warning("build %s not loaded, still serving %s: %s", name,
                        self._current.build_dir.name if self._current else "-", e)
            self._failed[name] = str(e)
            return
        except Exception as e:  # a bug must not stop the server from serving the old build
            log.exception("loading build %s failed", name)
            self._failed[name] = f"{type(e).__name__}: {e}"
            return
        self._current = retriever  # the swap: one assignment
        self.swaps += 1
        log.info("now serving build %s (loaded and warmed in %.1f s)",
                 retriever.build_dir.name, time.perf_counter() - t0)
