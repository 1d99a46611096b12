"""Statute files → Article records.

A corpus is a folder of Markdown statute files (the national collection's format, with a
metadata preamble closed by ``<!-- INFO END -->``) and, optionally, ``laws.sqlite3`` with
dates and validity. A user's own file may be plainer: a title line, then 第N条 paragraphs.

Parsing never stops at a bad file: each problem becomes a CorpusError naming file, line and
reason, the file is skipped, and the rest of the corpus is parsed.

    >>> report = parse_corpus(Path("corpus"))              # doctest: +SKIP
    >>> report.articles[0].citation, len(report.skipped)   # doctest: +SKIP
    ('《宪法》第一条', 0)
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from legalrag.citations import PRC
from legalrag.errors import CorpusError
from legalrag.numerals import NUMERAL_CHARS, article_label, parse_numeral
from legalrag.records import Article

INFO_END = "<!-- INFO END -->"
CORPUS_SUFFIXES = (".md", ".txt")
MAX_FILE_BYTES = 5 * 1024 * 1024  # the largest national statute is ~0.3 MB
USER_CATEGORY = "用户上传"

# 第N条 / 第N条之M at the start of a line, then a separator: the corpus always writes a space;
# requiring one keeps a paragraph that begins "第五条规定的……" inside its article.
ARTICLE_RE = re.compile(
    rf"^第([{NUMERAL_CHARS}]+)条(?:之([一二三四五六七八九十]+))?(?:[ \t\u3000:：]+|$)(.*)$"
)
# Amendments and decisions number their items 一、二、 instead of 第N条.
ITEM_RE = re.compile(r"^([一二三四五六七八九十百]+)、(.*)$")
HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
DATE_IN_NAME_RE = re.compile(r"\((\d{4}-\d{2}-\d{2})\)$")
DATE_IN_TEXT_RE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")
SPACES_RE = re.compile(r"\s+")
# Characters that show nothing: some files carry lines of a lone zero-width space.
INVISIBLE_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
# A chapter or section title written as a plain line, without its '#' (未成年人网络保护条例:
# "网络素养促进" between 第十二条 and 第十三条), or a heading wrapped onto a second line: Han
# characters only, short, and the next line starts an article.
BARE_HEADING_RE = re.compile(r"^[\u4e00-\u9fff][\u4e00-\u9fff ]{1,19}$")
# how an article's last paragraph ends, so that a title after it is not its continuation
SENTENCE_END = ("。", "；", "！", "？", "”", "」")

FOLDER_LEVELS = {
    "宪法": "宪法",
    "行政法规": "行政法规",
    "司法解释": "司法解释",
    "部门规章": "部门规章",
    "其他": "其他",
    USER_CATEGORY: "用户上传",
}


def short_title(title: str) -> str:
    """The law's key: its title without 中华人民共和国 and without spaces.

    >>> short_title("中华人民共和国劳动合同法"), short_title("个体工商户条例")
    ('劳动合同法', '个体工商户条例')
    """
    t = SPACES_RE.sub("", title).strip("《》")
    return t.removeprefix(PRC) or t


def metadata_key(name: str) -> str:
    """The key that joins a law to its laws.sqlite3 row: spaces collapsed, and a title
    quoted inside the name without 中华人民共和国, since the database writes
    最高人民法院关于适用《担保法》若干问题的解释 for the file's
    最高人民法院关于适用《中华人民共和国担保法》若干问题的解释.

    >>> metadata_key("最高人民法院关于适用《中华人民共和国担保法》若干问题的解释")
    '最高人民法院关于适用《担保法》若干问题的解释'
    """
    return SPACES_RE.sub(" ", name).strip().replace(f"《{PRC}", "《")


@dataclass(frozen=True, slots=True)
class LawMeta:
    """One row of laws.sqlite3."""

    name: str
    level: str
    publish: str
    valid_from: str
    expired: bool


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """What one file yields before versions are reconciled across the corpus."""

    source: str  # corpus-relative path
    title: str  # full title
    law: str  # short title
    part: str  # 民法典's 编 (second title line), else ""
    category: str
    version: str  # from the file name, "" if none
    preamble_date: str  # the latest date in the preamble, "" if none
    articles: tuple[Article, ...]
    warnings: tuple[CorpusError, ...] = ()


@dataclass
class CorpusReport:
    """Articles of a whole corpus, plus what was skipped or looked odd."""

    articles: list[Article] = field(default_factory=list)
    skipped: list[CorpusError] = field(default_factory=list)
    warnings: list[CorpusError] = field(default_factory=list)
    file_hashes: dict[str, str] = field(default_factory=dict)  # source -> sha256

    @property
    def laws(self) -> int:
        return len({a.law for a in self.articles})

    @property
    def versions(self) -> int:
        return len({(a.law, a.version) for a in self.articles})

    @property
    def in_force(self) -> int:
        return sum(a.in_force for a in self.articles)

    def summary(self) -> str:
        return (
            f"{self.laws} laws, {self.versions} versions, {self.in_force} articles in force / "
            f"{len(self.articles)} all; {len(self.skipped)} files skipped"
        )


def read_text(path: Path, source: str) -> str:
    """The file as text, or a CorpusError saying why it cannot be read as a statute."""
    data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise CorpusError(
            source, 0, f"file is {len(data) / 1e6:.1f} MB, larger than the "
            f"{MAX_FILE_BYTES // (1024 * 1024)} MB a statute file may be", code="too_large",
            fix="split it into one file per law",
        )
    if b"\x00" in data[:65536]:
        raise CorpusError(source, 0, "binary file (contains NUL bytes), not a statute text",
                          code="binary")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CorpusError(
            source, line, f"not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})",
            fix="re-save the file as UTF-8 (e.g. iconv -f GBK -t UTF-8)", code="not_utf8",
        ) from None


def parse_file(path: Path, source: str, category: str) -> ParsedFile:
    """Parse one statute file (national format or the plain user format).

    Raises CorpusError for a file that cannot be used: not UTF-8, no title, no articles,
    or an article number that occurs twice.
    """
    text = read_text(path, source)
    lines = text.splitlines()
    titles: list[str] = []
    body_start = 0
    has_info = INFO_END in text
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        if has_info:
            if line == INFO_END:
                body_start = i + 1
                break
            m = HEADING_RE.match(line)
            if m and len(m.group(1)) == 1:
                titles.append(SPACES_RE.sub("", m.group(2)))
        else:
            m = HEADING_RE.match(line)
            title = SPACES_RE.sub("", m.group(2) if m else line)
            if ARTICLE_RE.match(line) or not title or len(title) > 120:
                raise CorpusError(
                    source, i + 1, "no title: the first line must be the law's title",
                    fix="put the title (e.g. '# 某某条例') on the first line", code="no_title",
                )
            titles.append(title)
            body_start = i + 1
            break
    if not titles:
        raise CorpusError(source, 1, "no title: no '# 标题' line before the articles",
                          fix="put the title (e.g. '# 某某条例') on the first line",
                          code="no_title")
    dates = [f"{y}-{int(mo):02d}-{int(d):02d}"
             for y, mo, d in DATE_IN_TEXT_RE.findall("\n".join(lines[:body_start]))]
    title = titles[0]
    part = titles[1] if len(titles) > 1 else ""
    m = DATE_IN_NAME_RE.search(Path(source).stem)
    version = m.group(1) if m else ""
    law = short_title(title)
    level = _level_for(category)

    use_items = not any(ARTICLE_RE.match(ln.strip()) for ln in lines[body_start:])
    articles: list[Article] = []
    warnings: list[CorpusError] = []
    seen: dict[tuple[int, int], int] = {}
    headings: list[tuple[int, str]] = [(0, part)] if part else []
    current: dict | None = None

    def flush() -> None:
        if current is None:
            return
        body = "\n".join(p for p in current["paras"] if p)
        articles.append(
            Article(
                law_title=title, law=law, level=level, category=category,
                path=tuple(h for _, h in headings), number=current["number"],
                suffix=current["suffix"], label=article_label(current["number"], current["suffix"]),
                text=body, version=version, in_force=True, source=source, line=current["line"],
            )
        )

    last_number = 0
    clean = [SPACES_RE.sub(" ", INVISIBLE_RE.sub("", ln)).strip() for ln in lines]
    filled = [i for i in range(body_start, len(clean)) if clean[i]]
    after = dict(zip(filled, filled[1:], strict=False))  # the next non-empty line
    previous = ""  # the last non-empty line before this one
    for i in filled:
        line, before, previous = clean[i], previous, clean[i]
        h = HEADING_RE.match(line)
        if h:
            flush()
            current = None
            depth = len(h.group(1))
            headings = [x for x in headings if x[0] < depth]
            headings.append((depth, h.group(2)))
            continue
        if not use_items and _bare_heading(line, before, clean[after[i]] if i in after else ""):
            flush()
            current = None
            if HEADING_RE.match(before) and headings:  # the heading's second line
                depth, head = headings.pop()
                headings.append((depth, head + line))
            else:  # a title without its '#': a sibling of the last heading (附则: of
                # the first heading under the title, as it closes the whole law)
                depths = [d for d, _ in headings if d > 0] or [2]
                depth = min(depths) if line.replace(" ", "") == "附则" else max(depths)
                headings = [x for x in headings if x[0] < depth] + [(depth, line)]
            continue
        number = suffix = None
        rest = ""
        m = ARTICLE_RE.match(line) if not use_items else None
        if m:
            try:
                number = parse_numeral(m.group(1))
                suffix = parse_numeral(m.group(2)) if m.group(2) else 0
            except ValueError:
                raise CorpusError(
                    source, i + 1, f"article number in {line[:20]!r} is not a valid numeral",
                    fix="correct the number (e.g. 第二十二条, not 第二二条)") from None
            rest = m.group(3)
        elif use_items and (im := ITEM_RE.match(line)):
            try:
                n = parse_numeral(im.group(1))
            except ValueError:
                n = -1
            if n == last_number + 1:  # sub-lists inside an item restart at 一、
                number, suffix, rest = n, 0, line
        if number is None:
            if current is not None:
                current["paras"].append(line)
            continue
        flush()
        key = (number, suffix)
        if key in seen:
            raise CorpusError(
                source, i + 1,
                f"article {article_label(number, suffix)} occurs twice (first at line {seen[key]})",
                fix="remove or renumber the repeated article", code="duplicate_article",
                detail={"article": article_label(number, suffix), "first_line": seen[key]},
            )
        if (number, suffix) < (last_number, 0) and suffix == 0:
            warnings.append(CorpusError(
                source, i + 1,
                f"article {article_label(number, suffix)} follows "
                f"{article_label(last_number)}: out of order", code="out_of_order",
                detail={"article": article_label(number, suffix),
                        "after": article_label(last_number)},
            ))
        seen[key] = i + 1
        last_number = max(last_number, number)
        current = {"number": number, "suffix": suffix, "line": i + 1, "paras": [rest]}
    flush()
    if not articles:
        raise CorpusError(
            source, 0, "no articles: no line starts with 第N条",
            fix="each article must start a line with 第一条, 第二条, … followed by a space",
            code="no_articles",
        )
    return ParsedFile(source, title, law, part, category, version, max(dates, default=""),
                      tuple(articles),
                      tuple(warnings))


def _bare_heading(line: str, before: str, after: str) -> bool:
    """Whether line is a title written without its '#': a short line of Han characters
    between a heading, a finished article or the start of the body, and the start of the
    next article."""
    return (bool(BARE_HEADING_RE.match(line)) and bool(ARTICLE_RE.match(after))
            and not ARTICLE_RE.match(line)
            and (not before or bool(HEADING_RE.match(before)) or before.endswith(SENTENCE_END)))


def _level_for(category: str) -> str:
    top = category.split("/", 1)[0]
    return FOLDER_LEVELS.get(top, "法律")


def corpus_files(root: Path) -> list[Path]:
    """Statute files under root, in a stable order (README files excluded)."""
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in CORPUS_SUFFIXES
        and not p.name.startswith(".") and p.stem.upper() != "README"
    )


def load_metadata(root: Path) -> dict[str, list[LawMeta]]:
    """laws.sqlite3 rows by short name; empty when the corpus has no metadata file."""
    db = root / "laws.sqlite3"
    if not db.exists():
        return {}
    out: dict[str, list[LawMeta]] = defaultdict(list)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT name, level, COALESCE(publish,''), COALESCE(valid_from,''), expired FROM law"
        )
        for name, level, publish, valid_from, expired in rows:
            key = metadata_key(name)
            out[key].append(LawMeta(key, level, publish or "", valid_from or "", bool(expired)))
    finally:
        con.close()
    return dict(out)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_corpus(root: Path) -> CorpusReport:
    """Parse every statute file under root and decide versions and validity.

    The newest version of a law is in force unless laws.sqlite3 marks it expired.
    """
    meta = load_metadata(root)
    report = CorpusReport()
    parsed: list[ParsedFile] = []
    for path in corpus_files(root):
        source = path.relative_to(root).as_posix()
        category = path.parent.relative_to(root).as_posix()
        category = "" if category == "." else category
        try:
            report.file_hashes[source] = file_sha256(path)
            parsed.append(parse_file(path, source, category))
        except CorpusError as e:
            report.skipped.append(e)
        except OSError as e:
            report.skipped.append(CorpusError(source, 0, f"cannot read: {e.strerror}"))
    report.articles = reconcile(parsed, meta, report)
    return report


def reconcile(
    parsed: list[ParsedFile], meta: dict[str, list[LawMeta]], report: CorpusReport
) -> list[Article]:
    """Fill in version dates, levels and in-force flags across files of the same law."""
    by_law: dict[str, list[ParsedFile]] = defaultdict(list)
    for pf in parsed:
        by_law[pf.law].append(pf)
    out: list[Article] = []
    for law, files in by_law.items():
        resolved: list[tuple[ParsedFile, str, LawMeta | None]] = []
        for pf in files:
            # A code split by 编 is listed per part: "民法典 总则".
            rows = meta.get(metadata_key(f"{law} {pf.part}" if pf.part else law), [])
            row = _pick_row(rows, pf.version)
            version = pf.version or (row.publish if row else "") or pf.preamble_date
            resolved.append((pf, version, row))
        # The parts of a split code (民法典's 编) are one version: their preambles differ
        # (only some say 施行), so undated parts all take the newest date among them.
        undated_parts = [i for i, (pf, _, _) in enumerate(resolved) if pf.part and not pf.version]
        if len(undated_parts) > 1:
            shared = max(resolved[i][1] for i in undated_parts)
            for i in undated_parts:
                pf, _, row = resolved[i]
                resolved[i] = (pf, shared, row)
        # One version of a law may be split over several files (民法典): group by version.
        versions: dict[str, list[tuple[ParsedFile, LawMeta | None]]] = defaultdict(list)
        for pf, version, row in resolved:
            versions[version].append((pf, row))
        newest = max(versions)
        for version, members in versions.items():
            numbers: dict[tuple[int, int], str] = {}
            # National files first: when a hand-placed upload repeats a law, the upload
            # is the copy reported and skipped, never the official text.
            for pf, row in sorted(members, key=lambda m: (m[0].category == USER_CATEGORY,
                                                          m[0].source)):
                clash = next(((a, numbers[(a.number, a.suffix)]) for a in pf.articles
                              if (a.number, a.suffix) in numbers), None)
                if clash:
                    a, other = clash
                    report.skipped.append(CorpusError(
                        pf.source, a.line,
                        f"duplicate law: {a.citation} (version {version or 'undated'}) is "
                        f"already in {other}",
                        fix="remove one of the two files, or give each its version date "
                            "in the file name, e.g. 某某法(2024-01-01).md",
                        code="duplicate_law", detail={"other": other},
                    ))
                    continue
                for a in pf.articles:
                    numbers[(a.number, a.suffix)] = pf.source
                in_force = version == newest and not (row and row.expired)
                level = row.level if row else pf.articles[0].level
                report.warnings.extend(pf.warnings)
                out.extend(replace(a, version=version, in_force=in_force, level=level)
                           for a in pf.articles)
    return out


def _pick_row(rows: list[LawMeta], version: str) -> LawMeta | None:
    if not rows:
        return None
    if version:
        for r in rows:
            if r.publish == version:
                return r
        return None
    if len(rows) == 1:
        return rows[0]
    # An undated file of a law with several rows: the newest row describes it.
    return max(rows, key=lambda r: r.publish)
