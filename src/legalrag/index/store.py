"""The index on disk: build directories, the manifest, checksums and the atomic swap.

Layout under the index directory:

    CURRENT            name of the live build (replaced atomically with os.replace)
    LOCK               held (flock) by the one build or update that may run at a time
    builds/<name>/     one complete index each:
        manifest.json  what built it, what it holds, sha256 of every other file
        articles.json  the Article records, in index order
        tokens.json    BM25 tokens per article (reused by updates)
        userdict.txt   the segmenter's dictionary
        bm25/          the bm25s index
        laws.json      per law: how many articles of other laws cite it (an authority prior)
        dense.faiss    the FAISS inner-product index (absent until the dense part is built)
        query-encoder/ the embedding model tuned to place questions near their articles
                       (absent until the tune stage has run; see tune.py)

A build writes a new directory and only then points CURRENT at it, so a crash or Ctrl-C at
any moment leaves the previous index serving. Readers verify checksums on load.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from legalrag.errors import IndexBusyError, IndexCorruptError, IndexMismatchError, IndexMissingError
from legalrag.index.segment import SEGMENTER_NAME
from legalrag.records import Article

log = logging.getLogger(__name__)

FORMAT = 2
MANIFEST = "manifest.json"
ARTICLES = "articles.json"
TOKENS = "tokens.json"
USERDICT = "userdict.txt"
BM25_DIR = "bm25"
DENSE = "dense.faiss"
LAWS = "laws.json"
QUERY_ENCODER = "query-encoder"
REBUILD_HINT = "legalrag index build"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class IndexStore:
    """The index directory: which build is live, and the lock for writers."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.builds = self.root / "builds"

    def current(self) -> Path:
        """The live build directory, or IndexMissingError."""
        try:
            name = (self.root / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise IndexMissingError(f"no index in {self.root}",
                                    fix=f"run `{REBUILD_HINT}`") from None
        path = self.builds / name
        if not name or not path.is_dir():
            raise IndexCorruptError(f"{self.root}/CURRENT names build {name!r}, which is missing",
                                    fix=f"run `{REBUILD_HINT}`")
        return path

    def current_name(self) -> str | None:
        try:
            return (self.root / "CURRENT").read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def new_build_dir(self) -> Path:
        self.builds.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for i in range(1000):
            path = self.builds / f"tmp-{stamp}-{os.getpid()}-{i}"
            if (self.builds / path.name.removeprefix("tmp-")).exists():
                continue
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
        raise IndexBusyError(f"cannot create a build directory in {self.builds}")

    def publish(self, build: Path) -> Path:
        """Make build the live index: rename it to its final name, then swap CURRENT."""
        final = self.builds / build.name.removeprefix("tmp-")
        os.replace(build, final)
        _fsync_dir(self.builds)
        tmp = self.root / f".CURRENT.{os.getpid()}"
        tmp.write_text(final.name + "\n", encoding="utf-8")
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.root / "CURRENT")
        _fsync_dir(self.root)
        log.info("index %s is live", final.name)
        return final

    def collect_garbage(self, keep: set[str] = frozenset()) -> None:
        """Delete builds that are not live (unfinished ones from crashes included)."""
        live = self.current_name()
        for stale in self.root.glob(".CURRENT.*"):  # a run killed while swapping CURRENT
            stale.unlink(missing_ok=True)
        if not self.builds.exists():
            return
        for path in self.builds.iterdir():
            if path.name != live and path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive writer lock; IndexBusyError if another build or update holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "LOCK").open("a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IndexBusyError(
                    f"another build or update of {self.root} is running",
                    fix="wait for it to finish, then run the command again",
                ) from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")),
                    encoding="utf-8")


def write_articles(path: Path, articles: list[Article]) -> None:
    write_json(path, [asdict(a) for a in articles])


def read_articles(path: Path) -> list[Article]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [Article(**{**r, "path": tuple(r["path"])}) for r in rows]


def write_manifest(build: Path, manifest: dict) -> None:
    """Record checksums of every file in the build, then the manifest itself (last)."""
    sums = {}
    for f in sorted(build.rglob("*")):
        if f.is_file() and f.name != MANIFEST:
            sums[f.relative_to(build).as_posix()] = sha256_file(f)
    manifest = {**manifest, "format": FORMAT, "checksums": sums}
    tmp = build / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, build / MANIFEST)


def read_manifest(build: Path, *, verify: bool = True) -> dict:
    """The manifest of a build; with verify, every file's checksum is checked."""
    try:
        manifest = json.loads((build / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(f"{build} has no {MANIFEST}",
                                fix=f"run `{REBUILD_HINT}`") from None
    except json.JSONDecodeError as e:
        raise IndexCorruptError(f"{build / MANIFEST} is damaged: {e}",
                                fix=f"run `{REBUILD_HINT}`") from None
    if manifest.get("format") != FORMAT:
        raise IndexCorruptError(
            f"{build} has index format {manifest.get('format')}, this version reads {FORMAT}",
            fix=f"run `{REBUILD_HINT}`")
    if verify:
        for rel, want in manifest["checksums"].items():
            f = build / rel
            if not f.exists():
                raise IndexCorruptError(f"index file {f} is missing",
                                        fix=f"run `{REBUILD_HINT}`")
            if sha256_file(f) != want:
                raise IndexCorruptError(
                    f"index file {f} is corrupted or truncated (checksum mismatch)",
                    fix=f"run `{REBUILD_HINT}`")
    return manifest


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link a finished file (or tree) into a new build; copy where links fail."""
    if src.is_dir():
        dst.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir():
            link_or_copy(f, dst / f.name)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def check_compatible(manifest: dict, identity: dict, where: Path) -> None:
    """IndexMismatchError when the index was built with another model or segmenter."""
    built = manifest.get("embedding", {})
    if (built.get("name"), built.get("fingerprint")) != (identity["name"],
                                                         identity["fingerprint"]):
        raise IndexMismatchError(
            f"the index in {where} was built with embedding model {built.get('name')} "
            f"({built.get('fingerprint')}), but the configuration uses {identity['name']} "
            f"({identity['fingerprint']})",
            fix="run `legalrag index build` to rebuild it with the configured model",
        )
    seg = manifest.get("segmenter", {})
    if seg.get("name") != SEGMENTER_NAME:
        raise IndexMismatchError(
            f"the index in {where} was built with segmenter {seg.get('name')}, this version "
            f"uses {SEGMENTER_NAME}",
            fix="run `legalrag index build` to rebuild it",
        )
