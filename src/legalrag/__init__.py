"""legalrag: answers Chinese legal questions from the statutes themselves, locally.

    >>> from legalrag import Settings, Retriever, build_index     # doctest: +SKIP
    >>> settings = Settings.load()                                # doctest: +SKIP
    >>> build_index(settings)                                     # doctest: +SKIP
    >>> Retriever.open(settings).search("老板拖欠工资怎么办", k=5)  # doctest: +SKIP
"""

from __future__ import annotations

from legalrag.version import __version__

__all__ = ["Assistant", "Settings", "Retriever", "build_index", "__version__"]


def __getattr__(name: str):  # lazy: `legalrag --help` must not import faiss or torch
    if name == "Settings":
        from legalrag.config import Settings

        return Settings
    if name == "Retriever":
        from legalrag.retrieval.retriever import Retriever

        return Retriever
    if name == "Assistant":
        from legalrag.answer.assistant import Assistant

        return Assistant
    if name == "build_index":
        from legalrag.index.build import build_index

        return build_index
    raise AttributeError(name)
