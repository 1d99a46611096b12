"""The knowledge base behind the UI's 知识库 tab: index status, adding checked uploads,
removing uploaded laws, and bringing the index up at start.

Gradio-free, so every operation is a plain function a test can call with real files and a
real index. The UI wires these to buttons.

    >>> kb = KnowledgeBase(settings, LiveRetriever(settings))     # doctest: +SKIP
    >>> plan = kb.check_uploads([Upload("某某条例.md", Path("/tmp/x.md"))])   # doctest: +SKIP
    >>> [c.problem for c in plan.checks]                          # doctest: +SKIP
    ['']
    >>> kb.add(plan).summary                                      # doctest: +SKIP

Guarantees (issue 6, "Exposure"):

- Uploads are checked before anything is written (uploads.py: name, size, encoding,
  format, and a simulation of what the file does to its law's versions).
- Files are written only into ``corpus/用户上传/``, under a sanitised name, never through
  a symbolic link and never over an existing file (``O_EXCL`` + ``link``).
- Any failure of the index update (another build running, a crash) removes what was
  written or restores what was removed, so a rejected operation changes nothing.
- Only user-uploaded laws can be removed here. The national statutes are the shipped,
  version-controlled corpus: a chat user must not be able to delete official law from a
  browser; an administrator removes such a file from ``corpus/`` and runs
  ``legalrag index update``.

The index update itself is ``build_index(update=True)``: the live index keeps serving
until the new one is swapped in, and ``LiveRetriever`` moves the chat to it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from legalrag.index.build import BuildResult, build_index, check_compatible
from legalrag.config import Settings
from legalrag.index.corpus import (
    CORPUS_SUFFIXES,
    USER_CATEGORY,
    corpus_files,
    file_sha256,
)
from legalrag.index.embed import embedder_identity
from legalrag.errors import IndexBusyError, LegalRagError
from legalrag.records import Article
from legalrag.retrieval.retriever import LiveRetriever
from legalrag.index.store import read_manifest
from legalrag.web.uploads import Upload, UploadPlan, check_uploads, explain

log = logging.getLogger(__name__)

ProgressFactory = Callable[[str, int], Callable[[int], None]]

# Stages of an index update as people should read them; build_index reports the last two.
STAGES = {
    "write": "写入文件",
    "remove": "移出文件",
    "parse": "解析法库",
    "segment": "分词（关键词索引）",
    "embed": "计算向量（语义索引）",
    "tune": "调整查询编码器",
    "swap": "切换到新索引",
}


# ---------------------------------------------------------------- progress of index work


@dataclass(frozen=True)
class Job:
    """The index work running right now, as a status display shows it."""

    kind: str  # build, add, remove
    title: str  # 首次建立索引, 添加 2 个文件 …
    stage: str  # a key of STAGES
    done: int
    total: int
    started: float  # time.monotonic()

    @property
    def fraction(self) -> float | None:
        return min(self.done / self.total, 1.0) if self.total else None

    @property
    def stage_name(self) -> str:
        return STAGES.get(self.stage, self.stage)


class IndexJobs:
    """Which index build or update this process is running (the store lock allows one),
    how far it is, and how the last one ended. Shared by the UI's status panels."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: Job | None = None
        self.last_message = ""
        self.last_error = ""

    def current(self) -> Job | None:
        with self._lock:
            return self._job

    @contextlib.contextmanager
    def run(self, kind: str, title: str) -> Iterator[None]:
        """Record a job for the duration of the block, and how it ended."""
        with self._lock:
            self._job = Job(kind, title, "parse", 0, 0, time.monotonic())
        try:
            yield
        except BaseException as e:
            with self._lock:
                self.last_error = f"{title}：失败（{e}）"
            raise
        else:
            with self._lock:
                self.last_error = ""
        finally:
            with self._lock:
                self._job = None

    def finished(self, message: str) -> None:
        with self._lock:
            self.last_message = message

    def stage(self, stage: str, total: int = 0) -> None:
        with self._lock:
            if self._job is not None:
                self._job = Job(self._job.kind, self._job.title, stage, 0, total,
                                self._job.started)

    def _advance(self, n: int) -> None:
        with self._lock:
            if self._job is not None:
                j = self._job
                self._job = Job(j.kind, j.title, j.stage, j.done + n, j.total, j.started)

    def factory(self, forward: ProgressFactory | None = None) -> ProgressFactory:
        """A build_index progress factory that records progress here and forwards it."""

        def make(stage: str, total: int) -> Callable[[int], None]:
            self.stage(stage, total)
            tick = forward(stage, total) if forward is not None else None

            def advance(n: int) -> None:
                self._advance(n)
                if tick is not None:
                    tick(n)

            return advance

        return make


@dataclass(frozen=True)
class UpdateOutcome:
    """What an add or remove did: the files, the index summary, how long it took."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    summary: str
    seconds: float
    articles: int  # articles in the new index


@dataclass(frozen=True)
class UserFile:
    """A file in corpus/用户上传/ and what the live index holds of it."""

    source: str  # corpus-relative path
    law: str  # short title ("" when the file is not in the index)
    version: str
    articles: int
    in_force: bool


class KnowledgeBase:
    """Upload, remove and report on the corpus and its index, for one settings object.

    live: the LiveRetriever the chat uses, so status and duplicate checks see what the chat
    sees. jobs: shared progress of index work.
    """

    def __init__(self, settings: Settings, live: LiveRetriever,
                 jobs: IndexJobs | None = None) -> None:
        self.settings = settings
        self.live = live
        self.jobs = jobs or IndexJobs()

    @property
    def root(self) -> Path:
        return Path(self.settings.corpus_dir)

    def _live_articles(self) -> list[Article]:
        try:
            return self.live.get().articles
        except LegalRagError:  # no index yet, or a damaged one: the status panel says which
            return []

    def check_uploads(self, uploads: Sequence[Upload]) -> UploadPlan:
        """Check uploaded files against this corpus and the live index; writes nothing."""
        return check_uploads(uploads, self.root, self._live_articles(),
                             self.settings.max_upload_bytes)

    # -- adding and removing ------------------------------------------------------------

    def upload_dir(self) -> Path:
        """corpus/用户上传, created if missing; refused when it (or the way to it) is a
        symbolic link or not a directory, so nothing is ever written outside corpus/."""
        root = self.root
        if not root.is_dir():
            raise LegalRagError(f"法库目录 {root} 不存在", fix="检查 corpus_dir 设置")
        target = root / USER_CATEGORY
        try:
            os.mkdir(target, 0o755)
        except FileExistsError:
            pass
        st = os.lstat(target)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise LegalRagError(f"{target} 不是普通目录（可能是符号链接），拒绝写入",
                                fix=f"把 {target} 换成一个普通目录")
        if target.resolve() != root.resolve() / USER_CATEGORY:
            raise LegalRagError(f"{target} 指向法库目录之外，拒绝写入")
        return target

    def add(self, plan: UploadPlan, progress: ProgressFactory | None = None) -> UpdateOutcome:
        """Write the accepted files of plan into corpus/用户上传/ and update the index.

        On any failure the written files are removed again and the error is raised: the
        corpus and the live index are as they were.
        """
        files = plan.accepted
        if not files:
            raise LegalRagError("没有可添加的文件", fix="先上传通过检查的 .md / .txt 法规文件")
        t0 = time.perf_counter()
        with self.jobs.run("add", f"添加 {len(files)} 个文件"):
            self._stage(progress, "write", len(files))
            written: list[Path] = []
            try:
                folder = self.upload_dir()
                for c in files:
                    written.append(_write_new(folder, PurePosixPath(c.target).name, c.data))
                result = self._update(progress)
                lost = {e.path: e for e in result.report.skipped}
                refused = [c for c in files if c.target in lost]
                if refused:
                    # The simulation should have caught it; never keep a file the index
                    # skipped (another process changed the corpus in between).
                    raise LegalRagError("；".join(f"{c.name}：{explain(lost[c.target])}"
                                                 for c in refused))
            except BaseException:
                for p in written:
                    with contextlib.suppress(OSError):
                        p.unlink()
                if written and self._index_holds(written):
                    with contextlib.suppress(LegalRagError):
                        self._update(None)
                raise
            outcome = UpdateOutcome(tuple(c.target for c in files), (), result.summary(),
                                    time.perf_counter() - t0, len(result.report.articles))
            self.jobs.finished(f"已添加 {len(files)} 个文件，索引已更新"
                               f"（{outcome.seconds:.0f} 秒）")
            return outcome

    def user_files(self) -> list[UserFile]:
        """The files in corpus/用户上传/ (regular files only), with what the index holds."""
        folder = self.root / USER_CATEGORY
        try:
            st = os.lstat(folder)
        except FileNotFoundError:
            return []
        if not stat.S_ISDIR(st.st_mode):
            return []
        info: dict[str, list[Article]] = {}
        for a in self._live_articles():
            if a.category == USER_CATEGORY:
                info.setdefault(a.source, []).append(a)
        out = []
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if (entry.name.startswith(".") or not entry.is_file(follow_symlinks=False)
                    or Path(entry.name).suffix.lower() not in CORPUS_SUFFIXES):
                continue
            source = f"{USER_CATEGORY}/{entry.name}"
            arts = info.get(source, [])
            out.append(UserFile(source, arts[0].law if arts else "",
                                arts[0].version if arts else "", len(arts),
                                any(a.in_force for a in arts)))
        return out

    def remove(self, source: str, progress: ProgressFactory | None = None) -> UpdateOutcome:
        """Remove one user-uploaded file from the corpus and update the index.

        The file is first renamed to a hidden name (the corpus skips hidden files), deleted
        only after the new index is live, and renamed back if the update fails.
        """
        allowed = {f.source: f for f in self.user_files()}
        if source not in allowed:
            raise LegalRagError(
                f"不能删除 {source!r}：只能删除 {USER_CATEGORY}/ 中用户上传的法律",
                fix="国家法律库中的法律请由管理员从 corpus/ 删除文件后运行 legalrag index update")
        t0 = time.perf_counter()
        path = self.root / source
        hidden = path.with_name(f".removed-{secrets.token_hex(4)}-{path.name}")
        with self.jobs.run("remove", f"删除 {path.name}"):
            self._stage(progress, "remove", 1)
            os.rename(path, hidden)
            try:
                result = self._update(progress)
            except BaseException:
                os.rename(hidden, path)
                raise
            hidden.unlink(missing_ok=True)
            outcome = UpdateOutcome((), (source,), result.summary(), time.perf_counter() - t0,
                                    len(result.report.articles))
            self.jobs.finished(f"已删除 {source}，索引已更新（{outcome.seconds:.0f} 秒）")
            return outcome

    def _stage(self, progress: ProgressFactory | None, stage: str, total: int) -> None:
        tick = self.jobs.factory(progress)(stage, total)
        tick(total)

    def _index_holds(self, paths: list[Path]) -> bool:
        """Whether the live index was built with any of these corpus files (so it must be
        updated again after they are removed)."""
        try:
            files = self.live.get().manifest["corpus"]["files"]
        except LegalRagError:
            return False
        return any(p.relative_to(self.root).as_posix() in files for p in paths)

    def _update(self, progress: ProgressFactory | None) -> BuildResult:
        self.jobs.stage("parse")
        if progress is not None:
            progress("parse", 0)
        result = build_index(self.settings, update=True, progress=self.jobs.factory(progress))
        self._stage(progress, "swap", 1)
        self._switch()
        return result

    def _switch(self, timeout: float = 5.0) -> None:
        """Load the new build into the live retriever now, not on the next question, so
        the operation ends when the chat already answers from the new index."""
        deadline = time.monotonic() + timeout
        want = self.live.store.current_name()
        while time.monotonic() < deadline:
            try:
                if self.live.get().build_dir.name == want:
                    return
            except LegalRagError:
                return
            time.sleep(0.25)

    # -- bringing the index up at start ---------------------------------------------------

    def index_state(self) -> str:
        """What a start has to do with the index: ``current`` (nothing), ``stale`` (an
        update: the corpus files changed or the dense part is missing), ``missing`` or
        ``incompatible`` (built by another format, embedding model or segmenter: a full
        rebuild). Cheaper than asking build_index, which loads the whole previous index
        before deciding."""
        if self.live.store.current_name() is None:
            return "missing"
        try:
            build = self.live.store.current()
            manifest = read_manifest(build, verify=False)
            check_compatible(manifest, embedder_identity(self.settings), build)
        except LegalRagError:
            return "incompatible"
        if "dense" not in manifest.get("parts", ()):
            return "stale"
        root = self.root
        try:
            files = {p.relative_to(root).as_posix(): file_sha256(p) for p in corpus_files(root)}
        except OSError:
            return "stale"
        return "current" if files == manifest.get("corpus", {}).get("files") else "stale"

    def index_is_current(self) -> bool:
        return self.index_state() == "current"

    def start_update(self, progress: ProgressFactory | None = None,
                     on_error: Callable[[BaseException], None] | None = None
                     ) -> threading.Thread:
        """Build the index (first launch), rebuild it (incompatible) or bring it up to date,
        in a background thread.

        Either way the sparse part (BM25 + exact lookup) goes live first: build_index does
        that on a first build; a rebuild first builds the sparse part alone, then adds the
        embeddings as an update. So ``wait_until_live`` returns long before the embeddings
        are done.
        """
        state = self.index_state()
        title = {"missing": "首次建立索引", "incompatible": "重建索引（与当前配置不符）"}.get(
            state, "更新索引")

        def run() -> None:
            try:
                with self.jobs.run("build", title):
                    factory = self.jobs.factory(progress)
                    if state == "incompatible":
                        build_index(self.settings, dense=False, progress=factory)
                    result = build_index(self.settings, update=True, progress=factory)
                msg = "索引已是最新" if result.up_to_date else f"{title}完成：{result.summary()}"
                self.jobs.finished(msg)
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

    def wait_until_live(self, thread: threading.Thread, since: str | None = None,
                        poll: float = 0.2) -> bool:
        """Block until a usable index is live: one other than ``since`` (the build that was
        live when an incompatible index was being rebuilt), or any when since is None.
        Returns False when the build thread ended without one."""
        def ready() -> bool:
            name = self.live.store.current_name()
            return name is not None and name != since

        while not ready():
            if not thread.is_alive():
                return ready()
            time.sleep(poll)
        return True

    # -- status -----------------------------------------------------------------------------

    def status(self) -> dict:
        """The live index (laws, articles, model, build time, parts), the running job and
        the last outcome, for the status panel."""
        try:
            st = dict(self.live.get().status())
            st["live"] = True
        except LegalRagError as e:
            st = {"live": False, "error": str(e)}
        st["job"] = self.jobs.current()
        st["last_message"] = self.jobs.last_message
        st["last_error"] = self.jobs.last_error
        return st


def _write_new(folder: Path, name: str, data: bytes) -> Path:
    """Write data to folder/name, which must not exist; never follows a symbolic link.

    Written to a hidden temporary file first (the corpus skips hidden files) and then
    hard-linked to its name, which fails if anything at all is there already.
    """
    final = folder / name
    tmp = folder / f".upload-{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, final, follow_symlinks=False)
        except FileExistsError:
            raise LegalRagError(f"法库中已有 {USER_CATEGORY}/{name}，未覆盖",
                                fix="先删除原文件，或换一个文件名") from None
    finally:
        tmp.unlink(missing_ok=True)
    return final
