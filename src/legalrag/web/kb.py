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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from legalrag.config import Settings
from legalrag.errors import LegalRagError
from legalrag.index.build import BuildResult, build_index
from legalrag.index.corpus import (
    CORPUS_SUFFIXES,
    USER_CATEGORY,
)
from legalrag.index.store import IndexStore
from legalrag.progress import ProgressFactory
from legalrag.records import Article
from legalrag.retrieval.live import LiveRetriever
from legalrag.web.jobs import IndexJobs
from legalrag.web.uploads import Upload, UploadPlan, check_uploads, explain

log = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    """Seconds as people read a build's time: 45 秒, 32 分 48 秒, 1 小时 5 分."""
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f} 秒" if seconds < 10 else f"{s} 秒"
    if s < 3600:
        return f"{s // 60} 分 {s % 60} 秒"
    return f"{s // 3600} 小时 {s % 3600 // 60} 分"


def describe(result: BuildResult) -> str:
    """A build or update in Chinese, for the status panel (BuildResult.summary() is the
    English line the CLI prints). The parts are left out: the panel lists them already.

    >>> from legalrag.index.corpus import CorpusReport
    >>> describe(BuildResult(None, CorpusReport(), ["bm25"], seconds={"embed": 1968.3}))
    '0 部法律（0 个版本），现行有效条文 0 条，共 0 条；用时 32 分 48 秒'
    """
    r = result.report
    text = (f"{r.laws:,} 部法律（{r.versions:,} 个版本），现行有效条文 {r.in_force:,} 条，"
            f"共 {len(r.articles):,} 条")
    if r.skipped:
        text += f"；跳过 {len(r.skipped)} 个无法读取的文件"
    return f"{text}；用时 {duration(sum(result.seconds.values()))}"


@dataclass(frozen=True)
class UpdateOutcome:
    """What an add or remove did: the files, the index summary, how long it took."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    summary: str  # describe() of the index update
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
    sees. jobs: shared progress of index work. lock_wait: seconds to wait for another
    build or update to finish before refusing (IndexBusyError, nothing written).
    """

    def __init__(self, settings: Settings, live: LiveRetriever,
                 jobs: IndexJobs | None = None, lock_wait: float = 0.0) -> None:
        self.settings = settings
        self.live = live
        self.jobs = jobs or IndexJobs()
        self.store = IndexStore(settings.index_dir)
        self.lock_wait = lock_wait

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
            # One writer lock around writing, updating and publishing (issue 14): a CLI
            # `index update` cannot index these files between our write and our update,
            # nor publish after our failure has removed them. Busy: nothing is written.
            with self.store.lock(wait=self.lock_wait):
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
                                                     for c in refused), code="upload_refused")
                except BaseException:
                    for p in written:
                        with contextlib.suppress(OSError):
                            p.unlink()
                    self._undo_publish(written)
                    raise
            self._switch()
            outcome = UpdateOutcome(tuple(c.target for c in files), (), describe(result),
                                    time.perf_counter() - t0, len(result.report.articles))
            self.jobs.finished(f"已添加 {len(files)} 个文件，索引已更新"
                               f"（{outcome.seconds:.0f} 秒）")
            return outcome

    def _undo_publish(self, paths: list[Path]) -> None:
        """After a failed add (lock held): if the published index holds any of the removed
        files, publish an index without them; if even that fails, say so rather than let
        the user believe nothing was added."""
        if not paths or not self._index_holds(paths):
            return
        try:
            self._update(None)
        except LegalRagError as e:
            raise LegalRagError(
                "上传的文件已删除，但索引仍包含它们，且重新更新索引失败：" + str(e),
                fix="运行 legalrag index update", code="index_out_of_step") from e

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
            with self.store.lock(wait=self.lock_wait):
                os.rename(path, hidden)
                try:
                    result = self._update(progress)
                except BaseException:
                    os.rename(hidden, path)
                    raise
                hidden.unlink(missing_ok=True)
            self._switch()
            outcome = UpdateOutcome((), (source,), describe(result), time.perf_counter() - t0,
                                    len(result.report.articles))
            self.jobs.finished(f"已删除 {source}，索引已更新（{outcome.seconds:.0f} 秒）")
            return outcome

    def _stage(self, progress: ProgressFactory | None, stage: str, total: int) -> None:
        tick = self.jobs.factory(progress)(stage, total)
        tick(total)

    def _index_holds(self, paths: list[Path]) -> bool:
        """Whether the published index (what CURRENT names, not what the chat has loaded)
        was built with any of these corpus files."""
        try:
            opened = self.store.open_live(verify=False)
        except LegalRagError:
            return False
        opened.release()
        files = opened.manifest["corpus"]["files"]
        return any(p.relative_to(self.root).as_posix() in files for p in paths)

    def _update(self, progress: ProgressFactory | None) -> BuildResult:
        """Update the index; the caller holds the writer lock."""
        self.jobs.stage("parse")
        if progress is not None:
            progress("parse", 0)
        result = build_index(self.settings, update=True, progress=self.jobs.factory(progress),
                             locked=True)
        self._stage(progress, "swap", 0)  # one step: no count (jobs.UNITS)
        return result

    def _switch(self) -> None:
        """Load the new build into the live retriever now (in its loader thread), so the
        operation ends when the chat already answers from the new index."""
        try:
            self.live.refresh()
        except LegalRagError:
            pass

    # -- status -----------------------------------------------------------------------------

    def status(self) -> dict:
        """The live index (laws, articles, model, build time, parts), the running job and
        the last outcome, for the status panel."""
        try:
            st = dict(self.live.get().status())
            st["live"] = True
            if self.live.error:
                st["swap_error"] = self.live.error
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
