"""Checking uploaded statute files before anything is written (the 知识库 tab's preview).

Pure checks over bytes and the corpus as it is: the file name, size, binary content,
UTF-8, the format (a title and 第N条 articles, parsed by the corpus parser itself), and
what adding the file would do to its law's versions, simulated with the corpus
reconciler exactly as the next build will reconcile it. So a duplicate of a law already in
the corpus is refused here with a reason, instead of being skipped silently by the build
(or, worse, making the build skip the national file it duplicates).

    >>> plan = check_uploads([Upload("某某条例.md", path)], Path("corpus"), articles,
    ...                      max_bytes=2 << 20)                        # doctest: +SKIP
    >>> [(c.target, c.problem) for c in plan.checks]                  # doctest: +SKIP
    [('用户上传/某某条例.md', '')]
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from legalrag.index.corpus import (
    CORPUS_SUFFIXES,
    USER_CATEGORY,
    CorpusError,
    CorpusReport,
    ParsedFile,
    load_metadata,
    parse_file,
    reconcile,
)
from legalrag.records import Article

MAX_FILES_PER_UPLOAD = 20
MAX_NAME_CHARS = 80  # characters of the file name without its suffix
_FORBIDDEN_CHARS_RE = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\/]')


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the name the user gave it and where the server stored it."""

    name: str
    path: Path


@dataclass(frozen=True)
class UploadCheck:
    """What would happen to one uploaded file; ``problem`` says why it is refused."""

    name: str  # as uploaded
    target: str  # corpus-relative destination (用户上传/某某条例.md), "" without a usable name
    problem: str = ""  # empty when the file can be added
    title: str = ""
    law: str = ""
    version: str = ""
    articles: tuple[Article, ...] = ()  # with version and in-force status as they would be
    warnings: tuple[str, ...] = ()  # odd but acceptable (articles out of order)
    notes: tuple[str, ...] = ()  # what adding it changes (a new version in force …)
    data: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class UploadPlan:
    """The checked files of one upload; only the accepted ones are ever written."""

    checks: tuple[UploadCheck, ...] = ()

    @property
    def accepted(self) -> tuple[UploadCheck, ...]:
        return tuple(c for c in self.checks if c.ok)

    @property
    def rejected(self) -> tuple[UploadCheck, ...]:
        return tuple(c for c in self.checks if not c.ok)


def safe_name(name: str) -> str:
    """The file name an upload is stored under, or CorpusError saying why there is none.

    Only the last path component is kept (browsers send only that anyway; an API caller
    might send ../../x.md), characters that are unsafe in a file name are dropped, and the
    name must end in .md or .txt, not be hidden and not be README (the corpus skips both).

    >>> safe_name("../../etc/某某条例.MD"), safe_name("C:\\\\docs\\\\x.txt")
    ('某某条例.md', 'x.txt')
    """
    base = unicodedata.normalize("NFC", str(name)).replace("\\", "/")
    base = PurePosixPath(base).name if base.strip("/") else ""
    base = _FORBIDDEN_CHARS_RE.sub("", base).strip().lstrip(".").strip()
    stem, dot, suffix = base.rpartition(".")
    suffix = f".{suffix.lower()}" if dot else ""
    if suffix not in CORPUS_SUFFIXES:
        raise CorpusError(name or "(无名称)", 0, "只接受 .md 或 .txt 格式的法规文本文件",
                          fix="把文件另存为 UTF-8 编码的 .md 或 .txt 文件")
    stem = stem.strip()
    if not stem or stem.upper() == "README":
        raise CorpusError(name, 0, "文件名无效：需要以法规名称命名，例如 某某条例.md")
    if len(stem) > MAX_NAME_CHARS:
        raise CorpusError(name, 0, f"文件名过长（{len(stem)} 个字符，上限 {MAX_NAME_CHARS}）")
    return stem + suffix


def explain(e: CorpusError) -> str:
    """A corpus problem as a Chinese sentence for people (the parser's reasons are English)."""
    reason = e.reason
    where = f"第 {e.line} 行：" if e.line else ""
    code, d = e.code, e.detail
    if code == "not_utf8":
        return (f"{where}文件不是 UTF-8 编码（可能是 GBK）。请用文本编辑器另存为 UTF-8，"
                "或执行 iconv -f GBK -t UTF-8")
    if code == "binary":
        return "这是二进制文件（含 NUL 字节），不是法规文本"
    if code == "no_title":
        return f"{where}缺少标题：第一行应是法规名称，例如 “# 某某条例”"
    if code == "no_articles":
        return "没有找到条文：每一条应另起一行，以 “第一条”“第二条”…… 开头，后接空格"
    if code == "duplicate_article":
        return f"{where}条号重复：{d['article']} 已在第 {d['first_line']} 行出现过"
    if code == "out_of_order":
        return f"{where}条文顺序异常：{d['article']} 出现在 {d['after']} 之后"
    if code == "too_large":
        return "文件过大，一个文件应只含一部法规"
    return f"{where}{reason}" + (f"（{e.fix}）" if e.fix else "")


def check_uploads(uploads: Sequence[Upload], root: Path, live: Sequence[Article],
                  max_bytes: int) -> UploadPlan:
    """Check every uploaded file for a corpus at root whose live index holds the articles
    live (duplicates, versions), with a size limit of max_bytes. Nothing is written."""
    if len(uploads) > MAX_FILES_PER_UPLOAD:
        return UploadPlan(tuple(
            UploadCheck(u.name, "", f"一次最多上传 {MAX_FILES_PER_UPLOAD} 个文件，"
                        f"这次选了 {len(uploads)} 个") for u in uploads))
    checks: list[UploadCheck] = []
    parsed: dict[str, ParsedFile] = {}
    taken: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="legalrag-upload-") as tmp:
        for u in uploads:
            check, pf = _check_one(u, root, max_bytes, Path(tmp), taken)
            checks.append(check)
            if pf is not None:
                parsed[check.target] = pf
                taken.add(check.target)
    return UploadPlan(tuple(_simulate(checks, parsed, root, live)))


def _check_one(u: Upload, root: Path, limit: int, tmp: Path, taken: set[str]
               ) -> tuple[UploadCheck, ParsedFile | None]:
    try:
        name = safe_name(u.name)
    except CorpusError as e:
        return UploadCheck(u.name, "", e.reason), None
    target = f"{USER_CATEGORY}/{name}"
    try:
        st = os.lstat(u.path)
        if not stat.S_ISREG(st.st_mode):
            return UploadCheck(u.name, target, "不是普通文件"), None
        if st.st_size > limit:
            return UploadCheck(u.name, target, f"文件大小 {_size(st.st_size)}，超过上限 "
                               f"{_size(limit)}"), None
        if st.st_size == 0:
            return UploadCheck(u.name, target, "文件是空的"), None
        fd = os.open(u.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        return UploadCheck(u.name, target, f"无法读取上传的文件（{e.strerror}）"), None
    if len(data) > limit:
        return UploadCheck(u.name, target, f"文件超过上限 {_size(limit)}"), None
    if target in taken:
        return UploadCheck(u.name, target, f"同一批上传中已有同名文件 {name}"), None
    if os.path.lexists(root / target):
        return UploadCheck(u.name, target,
                           f"法库中已有同名文件 {target}；如要替换，请先在下方删除它"), None
    copy = tmp / f"{len(taken)}-{name}"
    copy.write_bytes(data)
    try:
        pf = parse_file(copy, target, USER_CATEGORY)
    except CorpusError as e:
        return UploadCheck(u.name, target, explain(e)), None
    return UploadCheck(u.name, target, "", pf.title, pf.law, pf.version, pf.articles,
                       tuple(explain(w) for w in pf.warnings), (), data), pf


def _simulate(checks: list[UploadCheck], parsed: dict[str, ParsedFile], root: Path,
              live: Sequence[Article]) -> list[UploadCheck]:
    """Reconcile each uploaded law with the corpus files of the same law, exactly as
    the next build will: refuse duplicates, say which version will be in force."""
    if not parsed:
        return checks
    sources_of: dict[str, set[str]] = {}
    in_force_before: dict[str, set[str]] = {}
    for a in live:
        sources_of.setdefault(a.law, set()).add(a.source)
        if a.in_force:
            in_force_before.setdefault(a.law, set()).add(a.version)
    meta = load_metadata(root)
    outcome: dict[str, tuple[str, tuple[Article, ...], tuple[str, ...]]] = {}
    for law in sorted({pf.law for pf in parsed.values()}):
        existing = [_parse_existing(root, src) for src in sorted(sources_of.get(law, ()))]
        existing_files = [pf for pf in existing if pf is not None]
        new_files = [pf for pf in parsed.values() if pf.law == law]
        new_sources = {pf.source for pf in new_files}
        # The reconciler keeps the first file of a version (in path order) and skips
        # the others; whichever side it skips, the clash is the upload's fault.
        while True:
            scratch = CorpusReport()
            articles = reconcile(existing_files + new_files, meta, scratch)
            clash = _clash(scratch.skipped, new_sources)
            if clash is None:
                break
            upload, other = clash
            pf = next(f for f in new_files if f.source == upload)
            outcome[upload] = (_duplicate_reason(pf, other, new_sources), (), ())
            new_files.remove(pf)
        now_in_force = {a.version for a in articles if a.in_force}
        for pf in new_files:
            mine = tuple(a for a in articles if a.source == pf.source)
            notes = _version_notes(law, mine, existing_files, in_force_before.get(law, set()),
                                   now_in_force)
            outcome[pf.source] = ("", mine, notes)
    out = []
    for c in checks:
        if c.ok and c.target in outcome:
            problem, mine, notes = outcome[c.target]
            if problem:
                c = UploadCheck(c.name, c.target, problem, c.title, c.law, c.version)
            else:
                version = mine[0].version if mine else c.version
                c = UploadCheck(c.name, c.target, "", c.title, c.law, version, mine,
                                c.warnings, notes, c.data)
        out.append(c)
    return out


def _parse_existing(root: Path, source: str) -> ParsedFile | None:
    path = root / source
    category = PurePosixPath(source).parent.as_posix()
    try:
        return parse_file(path, source, "" if category == "." else category)
    except (CorpusError, OSError):
        return None


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def _clash(skipped: list[CorpusError], uploads: set[str]) -> tuple[str, str] | None:
    """(upload, the file it clashes with) for the first duplicate involving an upload."""
    for e in skipped:
        other = e.detail.get("other", "") if e.code == "duplicate_law" else ""
        if e.path in uploads:
            return e.path, other
        if other in uploads:
            return other, e.path
    return None


def _duplicate_reason(pf: ParsedFile, other: str, uploads: set[str]) -> str:
    if other in uploads:
        first = f"这批上传中的 {other} 已是《{pf.law}》的同一版本"
    else:
        first = f"法库中已有《{pf.law}》的同一版本" + (f"（{other}）" if other else "")
    return (f"{first}。如果这是新版本，请在文件名中写明版本日期，例如 "
            f"{pf.law}(2024-01-01){Path(pf.source).suffix}")


def _version_notes(law: str, mine: tuple[Article, ...], existing: list[ParsedFile],
                   before: set[str], after: set[str]) -> tuple[str, ...]:
    if not mine:
        return ()
    version = mine[0].version or "日期不详"
    if not existing:
        return (f"新法律《{law}》，{len(mine)} 条",)
    if mine[0].in_force:
        replaced = sorted(before - after)
        if replaced:
            return (f"法库中已有《{law}》（版本 {', '.join(v or '日期不详' for v in replaced)}）。"
                    f"添加后，上传的版本 {version} 将成为现行有效版本，原版本标为非现行。",)
        return (f"法库中已有《{law}》的其他文件；上传的版本 {version} 将为现行有效版本。",)
    return (f"法库中已有《{law}》的较新版本；上传的版本 {version} 将作为历史版本加入"
            "（非现行有效）。",)
