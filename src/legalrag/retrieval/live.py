"""The retriever a long-running process (the chat server) keeps: it serves the live index
and moves to a newer build when ``CURRENT`` changes."""

from __future__ import annotations

import threading
import time

from legalrag.config import Settings
from legalrag.index.store import IndexStore
from legalrag.retrieval.retriever import Retriever


class LiveRetriever:
    """Serves the live index and switches to a newer build when CURRENT changes.

    The UI and server keep one of these: during `index update` they keep answering from the
    old build, and move to the new one on the next question after the swap.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = IndexStore(settings.index_dir)
        self._current: Retriever | None = None
        self._lock = threading.Lock()
        self._checked = 0.0

    def get(self) -> Retriever:
        with self._lock:
            now = time.monotonic()
            if self._current is None or now - self._checked > 1.0:
                self._checked = now
                name = self.store.current_name()
                if self._current is None or (name and name != self._current.build_dir.name):
                    # The embedder is not carried over: the new build may bring a newly
                    # tuned query encoder (load_embedder caches models by content).
                    self._current = Retriever.open(self.settings)
            return self._current
