"""Cross-references between articles: what an article points to, and what points to it.

A statute often says where the rest of a rule is: 劳动合同法第四十六条 owes compensation
when the worker leaves 依照本法第三十八条, and 第三十八条 (unpaid wages) is the article a
question about quitting over unpaid wages needs. A question's words may find the one and
not the other. ``CrossRefs`` is the map of those references over a build's articles,
built once per build (``Retriever.cross_refs``, a few seconds over the full corpus, done
by ``warm_up`` before a build serves); ``follow`` is the pure step that lets the articles
the top candidates cite join the ranking just below the article that cites them.

    >>> refs = CrossRefs({0: (("劳动合同法", 38, 0),)}, {("劳动合同法", 38, 0): (0,)})
    >>> follow([0, 1, 2], refs, {("劳动合同法", 38, 0): 9}.get, top=1, gap=1)
    ([0, 9, 1, 2], {9: 1})
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from legalrag.citations import LawNames, cross_references, reference_key
from legalrag.records import Article

Key = tuple[str, int, int]  # (law, article number, 之N suffix), as Retriever.lookup keys it

# Chosen on the STARD tune part by bench/tune_crossref.py (docs/evaluation.md,
# "Cross-references"): the articles cited by the TOP best candidates are placed GAP
# places below the one citing them (never higher than they already were), at most PER of
# them for each citing candidate.
TOP = 10
GAP = 3
PER = 1
LOOKUP_RELATED = 6  # after an exact lookup: at most this many cited + citing articles


@dataclass(frozen=True)
class CrossRefs:
    """forward: article row -> the articles its text cites, in text order (each an existing
    key, never its own); reverse: key -> the rows whose text cites it."""

    forward: dict[int, tuple[Key, ...]]
    reverse: dict[Key, tuple[int, ...]]

    @classmethod
    def build(cls, articles: Sequence[Article], names: LawNames) -> CrossRefs:
        """The references of every article: 本法第X条 and a bare 第X条 within its own law,
        《某法》第X条 resolved with LawNames (not strict: a wrong guess costs one extra
        candidate, not a false label). References to no article of the corpus are dropped."""
        exists = {(a.law, a.number, a.suffix) for a in articles}
        laws: dict[str, str | None] = {}

        def resolve(written: str) -> str | None:  # a few hundred distinct names: cache them
            if written not in laws:
                laws[written] = names.resolve(written)
            return laws[written]

        forward: dict[int, tuple[Key, ...]] = {}
        reverse: dict[Key, list[int]] = defaultdict(list)
        for row, a in enumerate(articles):
            if "条" not in a.text:  # no 第X条 in it: most articles, and the cheap test
                continue
            own = (a.law, a.number, a.suffix)
            keys: list[Key] = []
            for ref in cross_references(a.text):
                key = reference_key(ref, a.law, resolve)
                if key is None or key == own or key not in exists or key in keys:
                    continue
                keys.append(key)
                reverse[key].append(row)
            if keys:
                forward[row] = tuple(keys)
        return cls(forward, {k: tuple(v) for k, v in reverse.items()})


def follow(order: Sequence[int], refs: CrossRefs, row_of: Callable[[Key], int | None], *,
           top: int = TOP, gap: int = GAP, per: int = PER) -> tuple[list[int], dict[int, int]]:
    """The ranking with the articles the first ``top`` entries cite moved up (or brought
    in) to ``gap`` places below the entry citing them; an article already ranked higher
    stays where it is. row_of maps a cited key to the row to show (None: none usable, e.g.
    only old versions). Returns the new order and, for each article moved or brought in,
    the rank (from 1, in the given order) of the article that cites it.

    >>> refs = CrossRefs({5: (("法", 1, 0), ("法", 2, 0))}, {})
    >>> follow([7, 5, 8, 1, 9], refs, {("法", 1, 0): 1, ("法", 2, 0): 2}.get, top=2, gap=1,
    ...        per=2)
    ([7, 5, 1, 2, 8, 9], {1: 2, 2: 2})
    """
    out = list(order)
    moved: dict[int, int] = {}
    for rank, citer in enumerate(order[:top], 1):
        slot = out.index(citer) + gap
        taken = 0
        for key in refs.forward.get(citer, ()):
            if taken >= per:
                break
            row = row_of(key)
            if row is None or row in moved or row == citer:
                continue
            if row in out:
                at = out.index(row)
                if at <= slot:  # already there or higher: the next one goes below it
                    slot += at == slot
                    continue
                out.remove(row)
            out.insert(min(slot, len(out)), row)
            moved[row] = rank
            slot += 1
            taken += 1
    return out, moved


def related(row: int, key: Key, refs: CrossRefs, row_of: Callable[[Key], int | None],
            usable: Callable[[int], bool], law_of: Callable[[int], str],
            preference: Sequence[int], *, limit: int = LOOKUP_RELATED) -> list[int]:
    """After an exact lookup of ``row`` (key ``key``): the articles it cites, in text
    order, then the usable articles citing it, those the question's ranking lists first (in
    its order), then those of the same law, then the rest in corpus order; at most limit.

    >>> refs = CrossRefs({0: (("法", 9, 0),), 3: (("法", 1, 0),), 4: (("法", 1, 0),)},
    ...                  {("法", 1, 0): (3, 4)})
    >>> related(0, ("法", 1, 0), refs, {("法", 9, 0): 9}.get, lambda r: True,
    ...         lambda r: "法", [4])
    [9, 4, 3]
    """
    out: list[int] = []
    for k in refs.forward.get(row, ()):
        r = row_of(k)
        if r is not None and r != row and r not in out:
            out.append(r)
    position = {d: i for i, d in enumerate(preference)}
    citers = [r for r in refs.reverse.get(key, ()) if r != row and usable(r) and r not in out]
    citers.sort(key=lambda r: (position.get(r, len(position)), law_of(r) != key[0], r))
    out.extend(citers)
    return out[:limit]
