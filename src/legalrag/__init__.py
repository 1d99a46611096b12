"""legalrag: answers Chinese legal questions from the statutes themselves, locally.

    >>> from legalrag import Settings, Retriever, build_index     # doctest: +SKIP
    >>> settings = Settings.load()                                # doctest: +SKIP
    >>> build_index(settings)                                     # doctest: +SKIP
    >>> Retriever.open(settings).search("老板拖欠工资怎么办", k=5)  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Assistant", "Settings", "Retriever", "build_index", "__version__"]


def __getattr__(name: str):  # lazy: `legalrag --help` must not import faiss or torch
    if name == "Settings":
        from .config import Settings

        return Settings
    if name == "Retriever":
        from .retrieve import Retriever

        return Retriever
    if name == "Assistant":
        from .assistant import Assistant

        return Assistant
    if name == "build_index":
        from .build import build_index

        return build_index
    raise AttributeError(name)
