"""Building and updating the index: corpus → tokens → BM25, and → embeddings → FAISS.

``build_index(settings)`` builds from scratch; ``build_index(settings, update=True)`` reuses
the live index's tokens and vectors for every article whose text is unchanged, so adding
one law re-embeds only that law. Either way the result is written to a new directory and
swapped in atomically (see store.py); a failure at any point leaves the live index serving.

On a first build the sparse part (BM25 + exact lookup) goes live as soon as it is ready,
and the dense part follows when the embeddings are done.

    >>> result = build_index(Settings.load())          # doctest: +SKIP
    >>> result.summary()                                # doctest: +SKIP
    '1382 laws, 1462 versions, 56740 articles in force / 64983 all; ...'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from legalrag.citations import LawNames, find_citations
from legalrag.config import Settings
from legalrag.errors import IndexMissingError, LegalRagError
from legalrag.index.corpus import CorpusReport, parse_corpus
from legalrag.index.embed import embedder_identity, load_embedder
from legalrag.index.segment import SEGMENTER_NAME, Segmenter, corpus_terms
from legalrag.index.store import (
    ARTICLES,
    BM25_DIR,
    DENSE,
    LAWS,
    QUERY_ENCODER,
    TOKENS,
    USERDICT,
    IndexStore,
    check_compatible,
    link_or_copy,
    read_articles,
    write_articles,
    write_json,
    write_manifest,
)
from legalrag.progress import ProgressFactory, no_progress
from legalrag.records import Article
from legalrag.version import __version__

log = logging.getLogger(__name__)

def embed_text(a: Article) -> str:
    """What the dense model sees: short title, hierarchy, label, then the article text."""
    return f"{a.law} {' '.join(a.path)} {a.label}\n{a.text}"


def bm25_text(a: Article) -> str:
    """What BM25 indexes: the law's short title and headings weigh in beside the text."""
    return f"{a.law}\n{' '.join(a.path)}\n{a.text}"


def parsed_key(report: CorpusReport) -> str:
    """A hash of every article the parser made of the corpus: a new version of the parser
    can read unchanged files differently, and then an update has work to do."""
    h = hashlib.blake2b(digest_size=12)
    for a in report.articles:
        h.update(repr(a).encode("utf-8"))
    return h.hexdigest()


def content_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


@dataclass
class BuildResult:
    """What a build or update did."""

    build_dir: Path | None
    report: CorpusReport
    parts: list[str]
    embedded: int = 0  # articles embedded in this run
    reused: int = 0  # articles whose vectors came from the previous index
    shipped: int = 0  # articles whose vectors came from the shipped file (index/shipped.py)
    tokenized: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    changed_files: list[str] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)
    up_to_date: bool = False
    reparsed: bool = False  # the parser reads the corpus differently from the live build's

    def summary(self) -> str:
        if self.up_to_date:
            return f"index is up to date ({self.report.summary()})"
        total = sum(self.seconds.values())
        shipped = f", shipped {self.shipped}" if self.shipped else ""
        return (f"{self.report.summary()}; embedded {self.embedded}, reused {self.reused}"
                f"{shipped}; "
                f"parts: {', '.join(self.parts)}; {total:.1f} s")


@dataclass
class _Previous:
    """What an update can reuse from the live index."""

    path: Path
    fallback: str  # why path is not CURRENT's build ('' when it is)
    manifest: dict
    tokens: dict[str, list[str]]  # bm25 content key -> tokens
    vectors: dict[str, np.ndarray]  # embed content key -> vector
    terms: list[str]


def build_index(
    settings: Settings,
    *,
    update: bool = False,
    dense: bool = True,
    progress: ProgressFactory | None = None,
    locked: bool = False,
) -> BuildResult:
    """Build (or, with update, incrementally update) the index and make it live.

    locked: the caller already holds ``IndexStore.lock()`` (the knowledge base writes
    uploaded files and updates under one lock, so no other writer runs in between).

    Raises IndexBusyError when another build holds the lock, IndexMismatchError when an
    update meets an index built with another model or segmenter, LegalRagError when the
    corpus yields no articles at all.
    """
    progress = progress or no_progress
    store = IndexStore(settings.index_dir)
    with contextlib.nullcontext() if locked else store.lock():
        store.collect_garbage()  # unfinished builds of crashed runs
        return _build(settings, store, update=update, dense=dense, progress=progress)


def _build(settings: Settings, store: IndexStore, *, update: bool, dense: bool,
           progress: ProgressFactory) -> BuildResult:
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    report = parse_corpus(settings.corpus_dir)
    seconds["parse"] = time.perf_counter() - t0
    if not report.articles:
        raise LegalRagError(
            f"no articles found in {settings.corpus_dir} ({len(report.skipped)} files skipped)",
            fix="put statute files (.md/.txt) in the corpus folder",
        )
    identity = embedder_identity(settings)
    previous = _load_previous(store, identity) if update else None
    result = BuildResult(None, report, [], seconds=seconds)
    if previous is not None:
        old_files: dict[str, str] = previous.manifest["corpus"]["files"]
        result.changed_files = sorted(f for f, h in report.file_hashes.items()
                                      if old_files.get(f) != h)
        result.removed_files = sorted(set(old_files) - set(report.file_hashes))
        has_dense = "dense" in previous.manifest["parts"] or not dense
        # unchanged files read differently (this version's parser): the articles are updated
        result.reparsed = previous.manifest["corpus"].get("parsed") != parsed_key(report)
        if (not result.changed_files and not result.removed_files and has_dense
                and not result.reparsed):
            if previous.fallback:  # CURRENT was damaged: point it at the build we read
                store.set_current(previous.path.name)
                log.warning("CURRENT repaired: it names %s again", previous.path.name)
            result.up_to_date = True
            result.parts = previous.manifest["parts"]
            return result

    # Segmentation: an update keeps the live dictionary (plus new law titles), so unchanged
    # articles keep their tokens and only changed files are segmented again.
    t = time.perf_counter()
    terms = corpus_terms({a.law for a in report.articles}, _headings(report.articles))
    if previous is not None:
        terms = sorted(set(previous.terms) | {a.law for a in report.articles})
    segmenter = Segmenter(terms)
    seconds["dictionary"] = time.perf_counter() - t
    t = time.perf_counter()
    keys = [content_key(bm25_text(a)) for a in report.articles]
    old_tokens = previous.tokens if previous is not None else {}
    todo = [i for i, k in enumerate(keys) if k not in old_tokens]
    tick = progress("segment", len(todo))
    fresh: dict[str, list[str]] = {}
    for n, i in enumerate(todo, 1):
        fresh[keys[i]] = segmenter.tokenize(bm25_text(report.articles[i]))
        if n % 500 == 0 or n == len(todo):
            tick(500 if n % 500 == 0 else n % 500)
    tokens = [fresh.get(k) or old_tokens[k] for k in keys]
    result.tokenized = len(todo)
    seconds["segment"] = time.perf_counter() - t

    t = time.perf_counter()
    build = store.new_build_dir()
    write_articles(build / ARTICLES, report.articles)
    write_json(build / TOKENS, [[k, tok] for k, tok in zip(keys, tokens, strict=True)])
    segmenter.save(build / USERDICT)
    write_json(build / LAWS, law_citation_counts(report.articles))
    _write_bm25(build / BM25_DIR, tokens)
    seconds["bm25"] = time.perf_counter() - t

    base_manifest = {
        "package_version": __version__,
        "embedding": identity,
        "segmenter": {"name": SEGMENTER_NAME, "dictionary_hash": segmenter.dictionary_hash,
                      "terms": len(segmenter.terms)},
        "corpus": {
            "root": str(settings.corpus_dir),
            "files": report.file_hashes,
            "parsed": parsed_key(report),
            "skipped": [str(e) for e in report.skipped],
        },
        "counts": {"laws": report.laws, "versions": report.versions,
                   "articles": len(report.articles), "in_force": report.in_force},
    }
    live_has_dense = _live_has_dense(store, identity)
    if not dense or not live_has_dense:
        # Nothing dense is serving yet (or dense is not wanted): let the sparse part serve
        # now rather than after the embeddings.
        write_manifest(build, _stamp(base_manifest, ["lookup", "bm25"], seconds))
        build = store.publish(build)
        result.parts = ["lookup", "bm25"]
        if not dense:
            result.build_dir = build
            store.collect_garbage()
            return result
        sparse = build
        build = store.new_build_dir()
        for name in (ARTICLES, TOKENS, USERDICT, LAWS, BM25_DIR):
            link_or_copy(sparse / name, build / name)

    t = time.perf_counter()
    texts = [embed_text(a) for a in report.articles]
    ekeys = [content_key(x) for x in texts]
    old_vectors = previous.vectors if previous is not None else {}
    need = [i for i, k in enumerate(ekeys) if k not in old_vectors]
    vectors = np.zeros((len(texts), identity["dim"]), dtype=np.float32)
    for i, k in enumerate(ekeys):
        if k in old_vectors:
            vectors[i] = old_vectors[k]
    if need:
        # A text repeated across versions (an article a revision left unchanged) is
        # embedded once: 1,673 of the corpus's 64,983 articles.
        first: dict[str, int] = {}
        for i in need:
            first.setdefault(ekeys[i], i)
        found = _shipped(settings, identity, {k: texts[i] for k, i in first.items()},
                         seconds)
        unique = [i for k, i in first.items() if k not in found]
        fresh: dict[str, np.ndarray] = {}
        if unique:
            done = load_embedder(settings).encode([texts[i] for i in unique],
                                                  progress=progress("embed", len(unique)))
            fresh = {ekeys[i]: done[r] for r, i in enumerate(unique)}
        for i in need:
            vectors[i] = found[ekeys[i]] if ekeys[i] in found else fresh[ekeys[i]]
        result.shipped = sum(ekeys[i] in found for i in need)
    result.embedded = len(need) - result.shipped
    result.reused = len(texts) - len(need)
    seconds["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    _write_faiss(build / DENSE, vectors)
    seconds["faiss"] = time.perf_counter() - t
    result.parts = ["lookup", "bm25", "dense"]
    questions = Path(settings.tune_questions) if settings.tune_questions else None
    if questions is not None and not questions.exists():
        log.warning("tune_questions %s does not exist: questions use the base model", questions)
        questions = None
    live_tuned = previous is not None and (previous.path / QUERY_ENCODER).is_dir()
    if questions is not None and live_tuned:
        # An update keeps the live query encoder: the article space it was trained for
        # is unchanged for every article that did not change.
        link_or_copy(previous.path / QUERY_ENCODER, build / QUERY_ENCODER)
        base_manifest["query_encoder"] = previous.manifest.get("query_encoder")
        result.parts.append("tuned-queries")
    write_manifest(build, _stamp(base_manifest, result.parts, seconds))
    result.build_dir = store.publish(build)
    # Only a full build trains: an update must take seconds, so it keeps whatever encoder
    # the live index has (none, if it had none; `legalrag index build` adds one).
    if questions is not None and not live_tuned and previous is None:
        _tune_stage(settings, store, result, base_manifest, vectors, questions, seconds,
                    progress)
    store.collect_garbage()
    return result


def _shipped(settings: Settings, identity: dict, texts: dict[str, str],
             seconds: dict[str, float]) -> dict[str, np.ndarray]:
    """The shipped vectors (index/shipped.py) of the texts to embed (content key -> text)
    that this machine's embedder agrees with; {} when there are none."""
    if not settings.shipped_vectors:
        return {}
    from legalrag.index.shipped import locate, read_shipped, usable

    t = time.perf_counter()
    shipped = read_shipped(locate(settings.shipped_vectors), identity)
    got = usable(shipped, texts, load_embedder(settings).encode) if shipped else None
    seconds["shipped"] = time.perf_counter() - t
    if got is not None and got.vectors:
        log.info("%d of %d texts to embed have shipped vectors (sample of %d checked, "
                 "cosine >= %.4f)", len(got.vectors), len(texts), got.checked, got.min_cosine)
    return got.vectors if got is not None else {}


def _tune_stage(settings: Settings, store: IndexStore, result: BuildResult, manifest: dict,
                vectors: np.ndarray, questions: Path, seconds: dict[str, float],
                progress: ProgressFactory) -> None:
    """Train the query encoder for the live index and publish it with the index.

    The dense index is already serving (with the base model for questions) while this runs.
    """
    from legalrag.index.tune import TuneConfig, tune_for_index

    t = time.perf_counter()
    config = TuneConfig()
    dense_build = result.build_dir
    build = store.new_build_dir()
    for name in (ARTICLES, TOKENS, USERDICT, LAWS, BM25_DIR, DENSE):
        link_or_copy(dense_build / name, build / name)
    report = tune_for_index(settings, result.report.articles, vectors, questions,
                            build / QUERY_ENCODER, config=config, progress=progress)
    seconds["tune"] = time.perf_counter() - t
    result.parts = [*result.parts, "tuned-queries"]
    manifest = {**manifest, "query_encoder": {
        "trained_on": questions.name, "examples": report["examples"], "steps": report["steps"],
        "config": report["config"]}}
    write_manifest(build, _stamp(manifest, result.parts, seconds))
    result.build_dir = store.publish(build)


def law_citation_counts(articles: list[Article]) -> dict[str, int]:
    """How many in-force articles of other laws cite each law: a corpus-derived authority.

    民法典 and 刑法 are cited by hundreds of interpretations and regulations; a notice cited
    by nothing is rarely what a layperson's question is about.
    """
    names = LawNames(sorted({a.law for a in articles}))
    counts: dict[str, int] = {}
    for a in articles:
        if not a.in_force or "条" not in a.text:
            continue
        for law in {names.resolve(ref.law) for ref in find_citations(a.text)}:
            if law and law != a.law:
                counts[law] = counts.get(law, 0) + 1
    return dict(sorted(counts.items()))


def _stamp(manifest: dict, parts: list[str], seconds: dict[str, float]) -> dict:
    return {
        **manifest,
        "parts": parts,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def _headings(articles: list[Article]) -> set[str]:
    return {h for a in articles for h in a.path}


def _live_has_dense(store: IndexStore, identity: dict) -> bool:
    """Whether a usable dense index is serving (one built with this model counts)."""
    try:
        opened = store.open_live(verify=False)
        opened.release()
        check_compatible(opened.manifest, identity, opened.path)
    except LegalRagError:
        return False
    return "dense" in opened.manifest.get("parts", [])


def _load_previous(store: IndexStore, identity: dict) -> _Previous | None:
    """The live index's reusable parts, or None when there is none to update."""
    try:
        # CURRENT's build, or the newest complete one when CURRENT's is damaged (a power
        # cut on a disk that ignored fsync): the update then repairs CURRENT.
        opened = store.open_live()
    except IndexMissingError:
        return None
    opened.release()  # the writer lock keeps it: only writers delete builds
    live, manifest = opened.path, opened.manifest
    check_compatible(manifest, identity, live)
    tokens = {k: tok for k, tok in json.loads((live / TOKENS).read_text(encoding="utf-8"))}
    vectors: dict[str, np.ndarray] = {}
    if "dense" in manifest["parts"]:
        import faiss

        index = faiss.read_index(str(live / DENSE))
        mat = index.reconstruct_n(0, index.ntotal)
        for a, row in zip(read_articles(live / ARTICLES), mat, strict=True):
            vectors[content_key(embed_text(a))] = row
    terms = [t for t in (live / USERDICT).read_text(encoding="utf-8").splitlines() if t]
    return _Previous(live, opened.fallback, manifest, tokens, vectors, terms)


def _write_bm25(path: Path, tokens: list[list[str]]) -> None:
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    retriever = bm25s.BM25(k1=1.2, b=0.75)
    # bm25s needs at least one token per document; an empty article gets a placeholder.
    retriever.index([t or ["<empty>"] for t in tokens], show_progress=False)
    retriever.save(str(path), show_progress=False)


def _write_faiss(path: Path, vectors: np.ndarray) -> None:
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    faiss.write_index(index, str(path))

