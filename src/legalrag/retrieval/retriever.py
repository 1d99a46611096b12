"""Retrieval: exact lookup of cited articles, BM25, dense, and their fusion.

    >>> r = Retriever.open(Settings.load())                       # doctest: +SKIP
    >>> [h.article.citation for h in r.search("劳动合同法第四十七条", k=1)]   # doctest: +SKIP
    ['《劳动合同法》第四十七条']

A query that names an article gets that article at rank 1 (exact lookup), followed by the
fused BM25 + dense results. Fusion (fusion.py) is reciprocal rank fusion, then the reranker.
Versions in force only, unless include_old.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from legalrag.citations import LawNames, find_citations
from legalrag.config import Settings
from legalrag.errors import IndexCorruptError, IndexMismatchError, QueryError
from legalrag.index.embed import Embedder, embedder_identity, load_embedder
from legalrag.index.segment import Segmenter
from legalrag.index.store import (
    ARTICLES,
    BM25_DIR,
    DENSE,
    LAWS,
    QUERY_ENCODER,
    REBUILD_HINT,
    USERDICT,
    IndexStore,
    OpenBuild,
    check_compatible,
    read_articles,
    read_manifest,
)
from legalrag.index.tune import PRIOR_FILE, outdated, read_prior
from legalrag.records import Article, Hit
from legalrag.retrieval.cross import CrossEncoder
from legalrag.retrieval.crossref import CrossRefs, Key, follow, related
from legalrag.retrieval.fusion import Fusion, rrf
from legalrag.retrieval.glossary import Glossary
from legalrag.retrieval.rerank import Pool, features
from legalrag.vocab import MODES

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_QUERY_CHARS = 2000  # longer questions are cut for retrieval (the model sees the start)


@dataclass(frozen=True)
class Lookup:
    """Exact lookup result for one citation in a query."""

    written: str
    law: str | None  # corpus key, None when the law is unknown
    number: int
    suffix: int
    articles: tuple[Article, ...]  # newest version first; empty when no such article


class Retriever:
    """A loaded index. Thread-safe for searching; ``refresh`` picks up a newer build."""

    # After an exact lookup the rest of the hits are ranked as like the named article
    # (named_query); False ranks them by the question alone, as before (for benchmarks).
    rank_by_named: bool = True
    named_weight: float = 1.0

    def __init__(self, build_dir: Path, settings: Settings, *, verify: bool = True,
                 fusion: Fusion | None = None, opened: OpenBuild | None = None) -> None:
        import bm25s

        self.settings = settings
        self.build_dir = build_dir
        # The lease keeps writers from deleting this build while the retriever lives (the
        # query encoder is read from it lazily); released when the retriever is dropped.
        self.opened = opened or OpenBuild(build_dir, read_manifest(build_dir, verify=verify),
                                          IndexStore(build_dir.parents[1]).lease(
                                              build_dir.name))
        self.fallback = self.opened.fallback
        self.manifest = self.opened.manifest
        identity = embedder_identity(settings)
        check_compatible(self.manifest, identity, build_dir)
        self.segmenter = Segmenter.load(build_dir / USERDICT)
        if self.segmenter.dictionary_hash != self.manifest["segmenter"]["dictionary_hash"]:
            raise IndexMismatchError(
                f"the index in {build_dir} was segmented with another dictionary or stopword "
                "list than this version of legalrag ships",
                fix=f"run `{REBUILD_HINT}`",
            )
        self.articles: list[Article] = read_articles(build_dir / ARTICLES)
        self.parts: set[str] = set(self.manifest["parts"])
        self.bm25 = bm25s.BM25.load(str(build_dir / BM25_DIR), mmap=False,
                                    show_progress=False)
        self.dense = None
        if "dense" in self.parts:
            import faiss

            self.dense = faiss.read_index(str(build_dir / DENSE))
        self.in_force = np.array([a.in_force for a in self.articles], dtype=bool)
        self._by_citation: dict[tuple[str, int, int], list[int]] = defaultdict(list)
        for i, a in enumerate(self.articles):
            self._by_citation[(a.law, a.number, a.suffix)].append(i)
        for rows in self._by_citation.values():  # in force first, then newest first
            rows.sort(key=lambda i: self.articles[i].version, reverse=True)
            rows.sort(key=lambda i: not self.articles[i].in_force)
        self.names = LawNames(sorted({a.law for a in self.articles}))
        self.meta = [(a.law, a.number, a.level) for a in self.articles]  # reranker features
        # The shipped weights and reranker were fitted with the tuned query encoder; over the
        # base model's cosines they do worse than plain RRF (docs/evaluation.md).
        tuned = self.query_encoder != "base"
        stale = outdated(self.manifest) if settings.query_encoder == "auto" else None
        if tuned and stale:
            log.warning("the index's query encoder was trained with other settings than this "
                        "version's (%s): run `legalrag index build` to train it again (an "
                        "update keeps it)", stale)
        self.fusion = fusion or (Fusion.default() if settings.use_priors and tuned else Fusion())
        cited = json.loads((build_dir / LAWS).read_text(encoding="utf-8"))
        self.prior = np.array([self.fusion.prior(a.level, cited.get(a.law, 0))
                               for a in self.articles], dtype=np.float64)
        self.article_prior = self._article_prior() if tuned else None
        self.glossary = Glossary.load() if settings.query_glossary else None
        self._embedder: Embedder | None = None
        self._lock = threading.Lock()
        self._derived: dict[str, object] = {}
        self._derived_lock = threading.Lock()

    def _article_prior(self) -> np.ndarray | None:
        """settings.article_prior * log(1 + gold count) per article row, from the counts the
        tune stage kept beside the query encoder; None when off or there are none."""
        if self.settings.article_prior <= 0 or not self.settings.use_priors:
            return None
        counts = read_prior(Path(self.query_encoder))
        if counts is None:
            log.info("the query encoder has no %s: no article prior (rebuild the index "
                     "to add it)", PRIOR_FILE)
            return None
        n = np.array([counts.get((a.law, a.number, a.suffix), 0) for a in self.articles],
                     dtype=np.float64)
        return self.settings.article_prior * np.log1p(n)

    def derived(self, key: str, make: Callable[[], T]) -> T:
        """A value computed once per loaded build (make() on first use) and shared by every
        user of this retriever: e.g. the answer stage's citation-check tables, one per
        build however many option sets the chat serves."""
        with self._derived_lock:
            if key not in self._derived:
                self._derived[key] = make()
            return self._derived[key]  # type: ignore[return-value]

    @classmethod
    def open(cls, settings: Settings, *, verify: bool = True,
             fusion: Fusion | None = None) -> Retriever:
        """Load the live index named by CURRENT in settings.index_dir (or, when that build
        is damaged, the newest complete one: ``fallback`` says so)."""
        opened = IndexStore(settings.index_dir).open_live(verify=verify)
        try:
            return cls(opened.path, settings, verify=verify, fusion=fusion, opened=opened)
        except FileNotFoundError as e:  # only with verify=False: a file the manifest lists
            opened.release()
            raise IndexCorruptError(f"index file {e.filename} is missing",
                                    fix=f"run `{REBUILD_HINT}`") from None

    @property
    def query_encoder(self) -> str:
        """Which model embeds questions: the index's tuned encoder, the base model, or a path."""
        choice = self.settings.query_encoder
        tuned = self.build_dir / QUERY_ENCODER
        if choice == "auto":
            return str(tuned) if tuned.is_dir() else "base"
        return choice

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                encoder = self.query_encoder
                settings = self.settings
                if encoder != "base":
                    settings = replace(settings, embedding_model=encoder)
                self._embedder = load_embedder(settings)
            return self._embedder

    @property
    def base_embedder(self) -> Embedder:
        """The model that embedded the articles, as it came (the tuned query encoder's
        starting point). Its cosines do not move when the query encoder is trained another
        way, so the abstain rule measures a question with it (retrieval/abstain.py)."""
        if self.query_encoder == "base":
            return self.embedder
        return self.derived("base_embedder", lambda: load_embedder(self.settings))

    @property
    def cross(self) -> CrossEncoder | None:
        """The cross-encoder of settings.cross_encoder, loaded once per build (None when
        it is off or its file is not usable: the warning says why). It reorders the best
        hits of the ranking before cross-references are followed."""
        s = self.settings
        return self.derived("cross", lambda: CrossEncoder.load(
            s.cross_encoder, s.cross_encoder_backend, s.cache_dir))

    def warm_up(self) -> None:
        """Load the embedding model and the cross-encoder (and, with cross_references,
        build the cross-reference map) now rather than on the first question."""
        if self.dense is not None:
            self.embedder.encode(["预热"])
            self.base_embedder.encode(["预热"])
            if self.cross is not None:
                self.cross.scores("预热", ["预热"])
        if self.settings.cross_references:
            self.cross_refs  # noqa: B018 (built and kept by derived)

    @property
    def cross_refs(self) -> CrossRefs:
        """What each article cites and what cites it, built once per build (a few seconds
        over the full corpus; warm_up does it before a build serves)."""
        return self.derived("cross_refs", lambda: CrossRefs.build(self.articles, self.names))

    def shown_row(self, key: Key, include_old: bool = False) -> int | None:
        """The row of the version of an article a cross-reference shows: in force, newest
        (any version with include_old); None when there is none to show."""
        rows = self._by_citation.get(key, [])
        if rows and (include_old or self.in_force[rows[0]]):
            return rows[0]
        return None

    # -- exact lookup ---------------------------------------------------------------

    def lookup(self, law: str, number: int, suffix: int = 0) -> list[Article]:
        """Every version of one article, in force first, newest first; [] when none."""
        key = self.names.resolve(law) or law
        return [self.articles[i] for i in self._by_citation.get((key, number, suffix), [])]

    def lookup_query(self, query: str) -> list[Lookup]:
        """The articles a query cites by name (《劳动合同法》第四十七条, 民法典第1079条 …)."""
        out = []
        for ref in find_citations(query):
            law = self.names.resolve(ref.law)
            rows = self._by_citation.get((law, ref.number, ref.suffix), []) if law else []
            out.append(Lookup(ref.raw, law, ref.number, ref.suffix,
                              tuple(self.articles[i] for i in rows)))
        return out

    # -- ranked retrieval -----------------------------------------------------------

    def search(self, query: str, k: int = 10, mode: str = "hybrid",
               include_old: bool = False) -> list[Hit]:
        """The k best articles for a question; cited articles first (exact lookup)."""
        if mode not in MODES:
            raise QueryError(f"unknown retrieval mode {mode!r}", fix="use hybrid, bm25 or dense")
        if not 1 <= k <= 1000:
            raise QueryError(f"k = {k} is out of range", fix="use a k between 1 and 1000")
        query = clean_query(query)[:MAX_QUERY_CHARS]
        reranker = self.fusion.reranker if mode == "hybrid" and self.dense is not None else None
        depth = max(2 * k, 100, self.fusion.rerank_depth if reranker else 0)
        lookups = self.lookup_query(query)
        named = self.named_rows(lookups)
        if named and self.rank_by_named:
            # What follows an article the question names is ranked as like that article:
            # 《民法典》第一千零八十条是怎么规定的？ says nothing else, and searched as it
            # stands it finds 民事法律行为 and 规定, not 离婚.
            query, vec = self.named_query(query, named, embed=mode != "bm25")
        else:
            if self.glossary is not None:  # 周末加班 is searched with 休息日 延长工作时间
                query = self.glossary.expand(query)[:MAX_QUERY_CHARS]
            vec = self.embedder.encode([query]) if reranker else None
        rankings, raw = self.candidates(query, depth, mode, include_old, vec)
        fused = self.fuse(rankings)
        rrf_of = dict(fused)
        rank_of = {name: {d: r for r, d in enumerate(ids, 1)} for name, ids in rankings.items()}
        if reranker is not None and len(fused) > 1:
            pool = self.pool(query, rankings, raw, vec)
            x = features(pool, self.meta, query)
            rerank_scores = reranker.score(x)
            if self.article_prior is not None:
                rerank_scores = rerank_scores + self.article_prior[pool.ids]
            order = np.argsort(-rerank_scores, kind="stable")  # reranker.order with the prior
            fused = [(pool.ids[j], float(rerank_scores[j])) for j in order]
            raw = {"bm25": dict(zip(pool.ids, pool.bm25, strict=True)),
                   "dense": dict(zip(pool.ids, pool.dense, strict=True)),
                   "rerank": dict(zip(pool.ids, rerank_scores.tolist(), strict=True))}
        cross = self.cross if mode == "hybrid" and self.dense is not None else None
        # A question that names an article gets it and what it cites and is cited by, in
        # that order (crossref.related): nothing for the cross-encoder to reorder.
        if cross is not None and not any(lk.articles for lk in lookups):
            top = fused[:cross.config.depth]
            # the reranker's scores (with the prior) when it ranked them; RRF's are not
            # on the scale the model's score_weight was chosen on
            order, ce = cross.order(query, cross.texts(query, [self.articles[d] for d, _ in top]),
                                    [s for _, s in top] if reranker is not None else None)
            raw = {**raw, "cross": {d: float(c) for (d, _), c in zip(top, ce, strict=True)}}
            fused = [top[i] for i in order] + fused[len(top):]

        hits: list[Hit] = []
        seen: set[int] = set()
        looked_up: list[tuple[int, Lookup]] = []
        for lk in lookups:
            rows = [i for i, a in zip(self._rows(lk), lk.articles, strict=True)
                    if include_old or a.in_force or not any(x.in_force for x in lk.articles)]
            for i in rows[:1] if not include_old else rows:
                if i not in seen:
                    seen.add(i)
                    looked_up.append((i, lk))
                    hits.append(Hit(self.articles[i], 1.0, len(hits) + 1, {"lookup": 1},
                                    {"lookup": 1.0}))
        if self.settings.cross_references:
            return self._with_cross_refs(hits, looked_up, fused, k, include_old,
                                         rank_of, raw, rrf_of)
        for doc, score in fused:
            if len(hits) >= k:
                break
            if doc in seen:
                continue
            seen.add(doc)
            hits.append(self._hit(doc, score, len(hits) + 1, rank_of, raw, rrf_of))
        return hits[:k]

    def named_query(self, query: str, rows: Sequence[int], *, embed: bool = True
                    ) -> tuple[str, np.ndarray | None]:
        """The question and its vector, moved toward the articles it names (rows): for
        BM25 their text is added to the question; the question's vector is averaged with
        their stored vectors, named_weight to 1 (no embedding of their texts: the query
        encoder reads 64 tokens). Out of fold on STARD, weight 1 finds a question's other
        gold articles after a bare 《法》第N条是怎么规定的？ three times as often as the
        question alone, and as often when the question says more (bench/lookup_neighbours.py,
        docs/evaluation.md)."""
        text = "\n".join([query, *(self.articles[r].text for r in rows)])[:MAX_QUERY_CHARS]
        if self.dense is None or not embed:
            return text, None
        vec = self.embedder.encode([query])
        stored = self.dense.reconstruct_batch(np.asarray(rows, dtype=np.int64))
        both = vec[0] / np.linalg.norm(vec[0]) + self.named_weight * (stored / np.linalg.norm(
            stored, axis=1, keepdims=True)).mean(axis=0)
        return text, (both / np.linalg.norm(both)).astype(vec.dtype)[None, :]

    def _hit(self, doc: int, score: float, rank: int, rank_of: Mapping[str, Mapping[int, int]],
             raw: Mapping[str, Mapping[int, float]], rrf_of: Mapping[int, float]) -> Hit:
        ranks = {name: r[doc] for name, r in rank_of.items() if doc in r}
        scores = {name: raw[name][doc] for name in raw if doc in raw[name]}
        scores["rrf"] = rrf_of.get(doc, 0.0)
        return Hit(self.articles[doc], score, rank, ranks, scores)

    def _with_cross_refs(self, hits: list[Hit], looked_up: list[tuple[int, Lookup]],
                         fused: Sequence[tuple[int, float]], k: int, include_old: bool,
                         rank_of: Mapping[str, Mapping[int, int]],
                         raw: Mapping[str, Mapping[int, float]],
                         rrf_of: Mapping[int, float]) -> list[Hit]:
        """The hits with cross-references followed (settings.cross_references): after an
        exact lookup, what the article cites and what cites it (crossref.related), then the
        ranking; without one, the ranking with the articles its best entries cite placed
        just below them (crossref.follow).

        A hit brought in or moved up by a reference carries ``scores["xref"]``: the rank of
        the hit citing it (or, after a lookup, 0 for one the looked-up article cites and
        -1 for one citing it); its score is its own ranking score (0.0 when the ranking did
        not hold it), so scores need not fall down the list.
        """
        refs = self.cross_refs
        score_of = dict(fused)
        order = [i for i, _ in looked_up]
        first = set(order)  # already hits
        seen = set(order)
        via: dict[int, float] = {}
        in_force = self.in_force

        def row_of(key: Key) -> int | None:
            return self.shown_row(key, include_old)

        ranked = [d for d, _ in fused]
        for i, lk in looked_up:
            cited = set(refs.forward.get(i, ()))
            for r in related(i, (lk.law or "", lk.number, lk.suffix), refs, row_of,
                             lambda r: include_old or bool(in_force[r]),
                             lambda r: self.articles[r].law, ranked):
                if r not in seen:
                    seen.add(r)
                    order.append(r)
                    key = (self.articles[r].law, self.articles[r].number,
                           self.articles[r].suffix)
                    via[r] = 0.0 if key in cited else -1.0
        if looked_up:  # what the question names, and its references, lead
            order += [d for d in ranked if d not in seen]
        else:
            order, moved = follow(ranked, refs, row_of)
            via.update((r, float(rank)) for r, rank in moved.items())
        out = list(hits)
        for doc in order:
            if len(out) >= k:
                break
            if doc in first:
                continue
            hit = self._hit(doc, score_of.get(doc, 0.0), len(out) + 1, rank_of, raw, rrf_of)
            if doc in via:
                hit = replace(hit, scores={**hit.scores, "xref": via[doc]})
            out.append(hit)
        return out[:k]

    def fuse(self, rankings: Mapping[str, Sequence[int]]) -> list[tuple[int, float]]:
        """RRF over the rankings times the document prior, best first."""
        fused = [(d, s * self.prior[d]) for d, s in
                 rrf(rankings, k=self.fusion.rrf_k, weights=self.fusion.weights)]
        fused.sort(key=lambda x: (-x[1], x[0]))
        return fused

    def pool(self, query: str, rankings: Mapping[str, Sequence[int]],
             raw: Mapping[str, Mapping[int, float]], vec: np.ndarray | None = None) -> Pool:
        """The union of the ranked lists with the exact BM25 score and cosine of each.

        An article only one retriever listed still gets the other's score: BM25 scores
        every article anyway, and the cosine is one dot product with its stored vector.
        """
        ids = list(dict.fromkeys([*rankings.get("bm25", []), *rankings.get("dense", [])]))
        bm25 = dict(raw.get("bm25", {}))
        dense = dict(raw.get("dense", {}))
        missing = [d for d in ids if d not in bm25]
        if missing:
            tokens = [t for t in self.segmenter.tokenize(query) if t in self.bm25.vocab_dict]
            full = self.bm25.get_scores(tokens) if tokens else np.zeros(len(self.articles))
            bm25.update((d, float(full[d])) for d in missing)
        missing = [d for d in ids if d not in dense]
        if missing and self.dense is not None:
            if vec is None:
                vec = self.embedder.encode([query])
            stored = self.dense.reconstruct_batch(np.asarray(missing, dtype=np.int64))
            dense.update(zip(missing, (stored @ vec[0]).tolist(), strict=True))
        return Pool(ids, [bm25[d] for d in ids], [dense.get(d, 0.0) for d in ids],
                    {d: r for r, d in enumerate(rankings.get("bm25", []), 1)},
                    {d: r for r, d in enumerate(rankings.get("dense", []), 1)})

    def candidates(self, query: str, depth: int, mode: str = "hybrid", include_old: bool = False,
                   vec: np.ndarray | None = None
                   ) -> tuple[dict[str, list[int]], dict[str, dict[int, float]]]:
        """Each retriever's ranked article rows and raw scores, before fusion.

        Without a dense part, every mode falls back to BM25 (retrieval says so via parts).
        vec is the question's embedding when the caller has it already.
        """
        mask = None if include_old else self.in_force
        rankings: dict[str, list[int]] = {}
        raw: dict[str, dict[int, float]] = {}
        if mode in ("hybrid", "bm25") or self.dense is None:
            rankings["bm25"], raw["bm25"] = self._bm25(query, depth, mask)
        if mode in ("hybrid", "dense") and self.dense is not None:
            rankings["dense"], raw["dense"] = self._dense(query, depth, mask, vec)
        return rankings, raw

    def named_rows(self, lookups: Sequence[Lookup]) -> list[int]:
        """The row of each article the lookups found (its newest version), in order."""
        return [rows[0] for rows in map(self._rows, lookups) if rows]

    def _rows(self, lk: Lookup) -> list[int]:
        return self._by_citation.get((lk.law, lk.number, lk.suffix), []) if lk.law else []

    def _bm25(self, query: str, depth: int, mask: np.ndarray | None
              ) -> tuple[list[int], dict[int, float]]:
        tokens = [t for t in self.segmenter.tokenize(query) if t in self.bm25.vocab_dict]
        if not tokens:
            return [], {}
        scores = self.bm25.get_scores(tokens)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        return _top(scores, depth)

    def _dense(self, query: str, depth: int, mask: np.ndarray | None,
               vec: np.ndarray | None = None) -> tuple[list[int], dict[int, float]]:
        import faiss

        if vec is None:
            vec = self.embedder.encode([query])
        params = None
        if mask is not None:
            bits = np.packbits(mask.astype(np.uint8), bitorder="little")
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
            params = faiss.SearchParameters(sel=selector)
        scores, ids = self.dense.search(vec, depth, params=params)
        ranked = [int(i) for i in ids[0] if i >= 0]
        return ranked, {i: float(s) for i, s in zip(ranked, scores[0], strict=False)}

    # -- life cycle ----------------------------------------------------------------------

    def status(self) -> dict:
        m = self.manifest
        return {
            "build": self.build_dir.name,
            "built_at": m.get("built_at"),
            "parts": sorted(self.parts),
            "dense_live": "dense" in self.parts,
            "embedding": m["embedding"]["name"],
            "query_encoder": "tuned" if self.query_encoder != "base" else "base",
            "fallback": self.fallback,
            **m["counts"],
        }


def _top(scores: np.ndarray, depth: int) -> tuple[list[int], dict[int, float]]:
    depth = min(depth, len(scores))
    idx = np.argpartition(-scores, depth - 1)[:depth]
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    idx = [int(i) for i in idx if scores[i] > 0]
    return idx, {i: float(scores[i]) for i in idx}


def clean_query(query: str) -> str:
    """The question with control characters removed; QueryError when nothing is left."""
    if not isinstance(query, str):
        raise QueryError("the question must be text")
    cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in query).strip()
    if not cleaned:
        raise QueryError("the question is empty",
                         fix="type a legal question, e.g. 试用期可以随时辞职吗？")
    return cleaned
