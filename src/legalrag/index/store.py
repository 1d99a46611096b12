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

Durability (issue 14): every file of a build and every directory in it is fsynced before
its manifest is written, the manifest before the build is renamed to its final name, and
the builds folder before CURRENT; so after a power cut CURRENT names a complete build or
the previous one. The previous complete build is kept (KEEP_BUILDS), and a build a reader
holds a lease on (``readers/<build>.lock``, a shared flock held while a Retriever uses
it) is never deleted. When CURRENT names a build that is missing or damaged anyway (a
disk that lies about fsync, a hand edit), ``open_live`` falls back to the newest complete
build and says so (a warning, and ``fallback`` in what it returns).
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
from dataclasses import asdict, dataclass
from pathlib import Path

from legalrag.errors import (
    IndexBusyError,
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    LegalRagError,
)
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
READERS = "readers"
KEEP_BUILDS = 2  # the live build and the previous complete one


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class OpenBuild:
    """A build a reader opened: its directory, its manifest, the lease that keeps writers
    from deleting it while it is used, and why it is not CURRENT's build (fallback)."""

    path: Path
    manifest: dict
    lease: Lease | None
    fallback: str = ""

    def release(self) -> None:
        if self.lease is not None:
            self.lease.release()


class Lease:
    """A shared flock on readers/<build>.lock: writers skip a build while one is held.

    Held until release() or until the object is garbage-collected (its file closes)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a+")
        fcntl.flock(self._file, fcntl.LOCK_SH)

    def release(self) -> None:
        f = getattr(self, "_file", None)
        if f is not None:
            with contextlib.suppress(OSError, ValueError):
                f.close()

    def __del__(self) -> None:
        self.release()


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
        """Make build the live index: rename it to its final name, then swap CURRENT.

        The build's files and manifest are already on disk (write_manifest fsyncs them);
        the rename is made durable before CURRENT names the build."""
        final = self.builds / build.name.removeprefix("tmp-")
        os.replace(build, final)
        _fsync_dir(self.builds)
        self.set_current(final.name)
        log.info("index %s is live", final.name)
        return final

    def set_current(self, name: str) -> None:
        """Point CURRENT at build name, atomically and durably (writer lock held)."""
        tmp = self.root / f".CURRENT.{os.getpid()}"
        tmp.write_text(name + "\n", encoding="utf-8")
        fsync_file(tmp)
        os.replace(tmp, self.root / "CURRENT")
        _fsync_dir(self.root)

    def complete_builds(self) -> list[Path]:
        """Published builds whose manifest reads and lists only files that exist, newest
        first (by the manifest's write time). Checksums are not read: that is open_live's
        job for the one build it opens."""
        if not self.builds.exists():
            return []
        found = []
        for path in self.builds.iterdir():
            if path.name.startswith("tmp-") or not path.is_dir():
                continue
            try:
                manifest = read_manifest(path, verify=False)
                if all((path / rel).is_file() for rel in manifest["checksums"]):
                    found.append(((path / MANIFEST).stat().st_mtime_ns, path.name, path))
            except (LegalRagError, OSError, KeyError):
                continue
        return [p for *_, p in sorted(found, reverse=True)]

    def _current_raw(self) -> str | None:
        try:
            return (self.root / "CURRENT").read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None

    def lease(self, name: str) -> Lease:
        """A reader's hold on build name (see Lease)."""
        return Lease(self.root / READERS / f"{name}.lock")

    def open_live(self, *, verify: bool = True) -> OpenBuild:
        """The build to serve, leased: CURRENT's, or when that one is missing, incomplete or
        damaged, the newest complete build (a warning says so; ``fallback`` tells why).

        IndexMissingError when there is no index at all, IndexCorruptError (naming what is
        wrong with CURRENT's build) when no build is usable. A writer deleting builds
        meanwhile is retried, never surfaces as a bare FileNotFoundError."""
        for _attempt in range(3):
            problem = ""
            try:
                raw: str | None = (self.root / "CURRENT").read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                raw = None
            except (OSError, UnicodeDecodeError) as e:
                raw = ""
                problem = f"{self.root}/CURRENT cannot be read: {e}"
            complete = self.complete_builds()
            if raw is None and not complete:
                raise IndexMissingError(f"no index in {self.root}",
                                        fix=f"run `{REBUILD_HINT}`")
            candidates = list(dict.fromkeys(([raw] if raw else []) +
                                            [p.name for p in complete]))
            if raw is not None and not (raw and (self.builds / raw).is_dir()):
                problem = problem or f"{self.root}/CURRENT names build {raw!r}, which is missing"
            for cand in candidates:
                lease = self.lease(cand)
                try:
                    manifest = read_manifest(self.builds / cand, verify=verify)
                except IndexCorruptError as e:
                    lease.release()
                    if cand == raw and not problem:
                        problem = e.message
                    continue
                fallback = ""
                if cand != raw and self._current_raw() != raw:
                    lease.release()  # a writer swapped meanwhile: look again
                    break
                if cand != raw:
                    fallback = (f"{problem or 'CURRENT is missing'}; serving the newest "
                                f"complete build {cand} instead")
                    log.warning("%s (fix: run `legalrag index update`)", fallback)
                return OpenBuild(self.builds / cand, manifest, lease, fallback)
            else:
                if self._current_raw() == raw:  # nothing moved under us: nothing is usable
                    break
        raise IndexCorruptError(f"{problem}; no other complete build in {self.builds}",
                                fix=f"run `{REBUILD_HINT}`")

    def collect_garbage(self, keep: set[str] = frozenset()) -> None:
        """Delete builds that are neither live, nor among the KEEP_BUILDS newest complete
        ones, nor leased by a reader (unfinished builds of crashed runs included).

        Call with the writer lock held: a tmp- build of a running writer is not kept."""
        live = self.current_name()
        for stale in self.root.glob(".CURRENT.*"):  # a run killed while swapping CURRENT
            stale.unlink(missing_ok=True)
        if not self.builds.exists():
            return
        kept = {live, *keep, *(p.name for p in self.complete_builds()[:KEEP_BUILDS])}
        for path in self.builds.iterdir():
            if path.name in kept:
                continue
            lock_path = self.root / READERS / f"{path.name}.lock"
            if not lock_path.exists():
                shutil.rmtree(path, ignore_errors=True)
                continue
            with lock_path.open("a+") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log.info("build %s is still read; kept", path.name)
                    continue
                shutil.rmtree(path, ignore_errors=True)
                lock_path.unlink(missing_ok=True)
        readers = self.root / READERS
        if readers.is_dir():  # leases of builds that are gone
            for lock_path in readers.glob("*.lock"):
                if (self.builds / lock_path.stem).exists():
                    continue
                with lock_path.open("a+") as f:
                    try:
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue
                    lock_path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self, wait: float = 0.0) -> Iterator[None]:
        """Exclusive writer lock; IndexBusyError if another build or update still holds it
        after wait seconds (0: do not wait)."""
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait
        with (self.root / "LOCK").open("a+") as f:
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise IndexBusyError(
                            f"another build or update of {self.root} is running",
                            fix="wait for it to finish, then run the command again",
                        ) from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush one file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file under root, then every directory, deepest first, root last: after
    this a power cut cannot lose or truncate anything in the tree."""
    dirs = [root]
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            fsync_file(Path(dirpath) / name)
        dirs.extend(Path(dirpath) / d for d in dirnames)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        _fsync_dir(d)


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")),
                    encoding="utf-8")


def write_articles(path: Path, articles: list[Article]) -> None:
    write_json(path, [asdict(a) for a in articles])


def read_articles(path: Path) -> list[Article]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [Article(**{**r, "path": tuple(r["path"])}) for r in rows]


def write_manifest(build: Path, manifest: dict) -> None:
    """Record checksums of every file in the build, make them all durable, then write the
    manifest itself (last, and durable too before anything can name the build)."""
    sums = {}
    for f in sorted(build.rglob("*")):
        if f.is_file() and f.name != MANIFEST:
            sums[f.relative_to(build).as_posix()] = sha256_file(f)
    fsync_tree(build)
    manifest = {**manifest, "format": FORMAT, "checksums": sums}
    tmp = build / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    fsync_file(tmp)
    os.replace(tmp, build / MANIFEST)
    _fsync_dir(build)


def read_manifest(build: Path, *, verify: bool = True) -> dict:
    """The manifest of a build; with verify, every file's checksum is checked."""
    try:
        manifest = json.loads((build / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(f"{build} has no {MANIFEST}",
                                fix=f"run `{REBUILD_HINT}`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexCorruptError(f"{build / MANIFEST} is damaged: {e}",
                                fix=f"run `{REBUILD_HINT}`") from None
    if manifest.get("format") != FORMAT:
        raise IndexCorruptError(
            f"{build} has index format {manifest.get('format')}, this version reads {FORMAT}",
            fix=f"run `{REBUILD_HINT}`")
    if not isinstance(manifest.get("checksums"), dict):
        raise IndexCorruptError(f"{build / MANIFEST} lists no checksums",
                                fix=f"run `{REBUILD_HINT}`")
    if verify:
        for rel, want in manifest["checksums"].items():
            f = build / rel
            try:
                got = sha256_file(f)
            except FileNotFoundError:
                raise IndexCorruptError(f"index file {f} is missing",
                                        fix=f"run `{REBUILD_HINT}`") from None
            if got != want:
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
