"""Finding and resolving statute citations in free text.

A citation names a law and an article: 《劳动合同法》第四十七条, 民法典第1079条,
中华人民共和国刑法第一百三十三条之一, 劳动法第三十六条第二款. The same parser serves exact
lookup in retrieval, gold citations in evaluation and the check of generated answers.

    >>> names = LawNames(["劳动合同法", "民法典"])
    >>> [(names.resolve(c.law), c.number) for c in find_citations("依《劳动合同法》第四十七条")]
    [('劳动合同法', 47)]
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from legalrag.numerals import NUMERAL_CHARS, parse_numeral

PRC = "中华人民共和国"
_NUM = rf"[{NUMERAL_CHARS}]+"
# Whitespace is allowed around the number (第 47 条), never inside it. 第K项 may be written
# with brackets (第（二）项), as statutes number their items.
_ARTICLE = (rf"第\s*(?P<num>{_NUM})\s*条(?:之(?P<suf>[一二三四五六七八九十]+))?"
            rf"(?:第\s*(?P<para>{_NUM})\s*款)?(?:第\s*[（(]?(?P<item>{_NUM})[）)]?\s*项)?")
# A bracketed title, or a run of CJK text ending in a word that ends law titles.
# One level of nesting: 《最高人民法院关于适用《中华人民共和国民事诉讼法》的解释》.
_BRACKETED = r"《(?P<btitle>(?:[^《》\n]|《[^《》\n]{1,40}》){1,100})》"
_TITLE_ENDS = (r"(?:法|法典|典|条例|规定|解释|办法|决定|细则|规则|意见|通知|批复|章程"
               r"|规章|准则|纲要"
               r"|修正案(?:（[一二三四五六七八九十]+）)?)")
_BARE = rf"(?P<title>[\u4e00-\u9fff（）()〈〉·]{{1,60}}?{_TITLE_ENDS})"
CITATION_RE = re.compile(rf"(?:{_BRACKETED}|{_BARE})\s*{_ARTICLE}")
# 、第四十条 / 和第四十条 / 及第四十条 right after a citation continues the same law.
CONTINUATION_RE = re.compile(rf"^\s*(?:、|，|,|和|及|以及|或者|或)\s*{_ARTICLE}")
_NORMALIZE = str.maketrans({"(": "（", ")": "）", "〈": "《", "〉": "》"})
_SPACE_RE = re.compile(r"\s+")

# A bare title in running text (no 《》) is a run of CJK characters that may carry words in
# front of the law's name (根据劳动合同法, 劳动者有本法). Those words are cut off only after
# one of these, so 日本劳动法, 美国民法典 or 网络数据安全法 never shrink to a real law.
# Verbs that introduce a law: the name after them is read as a law even when the corpus
# lacks it (根据劳动保障法第三条 names an unknown law).
STRONG_TRIGGERS = ("根据", "依照", "依据", "按照", "违反", "适用", "参照", "参见", "援引",
                   "遵照", "遵守", "对照", "依", "按", "据", "照")
# Function words after which a known law's name may follow (劳动者有劳动合同法第三十九条…);
# after these an unknown name is not read as a law (以及依法第十条 names none).
WEAK_TRIGGERS = ("见", "即", "有", "在", "由", "和", "与", "及", "或", "是", "为", "、",
                 "属于", "符合",  # 属于商标法第十条 (copied from a 司法解释)
                 "就", "对于")  # 经营者就消费者权益保护法第二十五条第一款规定的…
_TRIGGER_RE = re.compile("|".join(sorted(STRONG_TRIGGERS + WEAK_TRIGGERS, key=len,
                                         reverse=True)))
_STRONG_RE = re.compile("|".join(sorted(STRONG_TRIGGERS, key=len, reverse=True)))

# Short names people use for laws whose titles they do not spell out. Only these and the
# exact normalized title resolve a name: nothing is matched to a shorter name.
ALIASES = {
    "刑诉法": "刑事诉讼法",
    "民诉法": "民事诉讼法",
    "行诉法": "行政诉讼法",
    "劳动合同": "劳动合同法",
    "道交法": "道路交通安全法",
    "消法": "消费者权益保护法",
    "消保法": "消费者权益保护法",
    "个保法": "个人信息保护法",
    "治安处罚法": "治安管理处罚法",
    "反不正当竞争": "反不正当竞争法",
    "刑法修正案（一）": "刑法修正案",  # the first amendment's title carries no number
}


@dataclass(frozen=True, slots=True)
class CitationRef:
    """One citation as written in a text, before it is resolved against a corpus."""

    law: str  # the law as written, without 《》 (a bare title: the whole run of CJK text)
    number: int  # 0 when the number cannot be read (see error)
    suffix: int  # 之一 -> 1
    paragraph: int | None  # 第二款 -> 2
    start: int  # character span in the text
    end: int
    raw: str
    bracketed: bool  # written as 《…》
    item: int | None = None  # 第三项 -> 3
    error: str = ""  # why the number cannot be read (find_citations(malformed=True) only)

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.law, self.number, self.suffix)


def normalize_law_name(name: str) -> str:
    """Comparable form of a law title: no 《》, spaces or 中华人民共和国, full and half width
    folded (NFKC), brackets written full width.

    >>> normalize_law_name("《中华人民共和国 民法典》"), normalize_law_name("解释(一)")
    ('民法典', '解释（一）')
    """
    n = unicodedata.normalize("NFKC", _SPACE_RE.sub("", name)).translate(_NORMALIZE)
    if n.startswith("《") and n.endswith("》"):
        n = n[1:-1]
    return n.removeprefix(PRC).replace("《" + PRC, "《")


def find_citations(text: str, *, malformed: bool = False) -> list[CitationRef]:
    """Every citation in text, in order.

    A malformed number (第十十条, 第二百一条) is never guessed: the citation is skipped, or,
    with malformed=True (the answer check, which must label it), kept with number 0 and
    the reason in ``error``.

    >>> [(c.law, c.number, c.suffix) for c in find_citations("刑法第一百三十三条之一和第二条")]
    [('刑法', 133, 1), ('刑法', 2, 0)]
    >>> [(c.number, c.error != "") for c in find_citations("《刑法》第十十条", malformed=True)]
    [(0, True)]
    """
    out: list[CitationRef] = []
    for m in CITATION_RE.finditer(text):
        law = m.group("btitle") or m.group("title")
        ref = _ref(m, law, m.start(), bool(m.group("btitle")))
        if ref.error and not malformed:
            continue
        out.append(ref)
        pos = m.end()
        while c := CONTINUATION_RE.match(text[pos:]):
            nxt = _ref(c, law, pos + c.start(), ref.bracketed, offset=pos)
            if nxt.error and not malformed:
                break
            out.append(nxt)
            pos += c.end()
    return out


def _ref(m: re.Match[str], law: str, start: int, bracketed: bool,
         offset: int = 0) -> CitationRef:
    error = ""
    try:
        number = parse_numeral(_SPACE_RE.sub("", m.group("num")))
    except ValueError as e:
        number, error = 0, str(e)
    values: list[int | None] = []
    for group in ("suf", "para", "item"):
        try:
            values.append(parse_numeral(m.group(group)) if m.group(group) else None)
        except ValueError as e:
            values.append(None)
            error = error or str(e)
    suffix, para, item = values
    end = offset + m.end()
    raw = m.string[m.start():m.end()] if not offset else m.group(0).lstrip("、，,和及以或者 ")
    return CitationRef(normalize_law_name(law), number, suffix or 0, para, start, end, raw,
                       bracketed, item, error)


def trigger_suffixes(run: str, *, strong_only: bool = False) -> list[str]:
    """The parts of a bare title that follow a trigger word, longest first.

    >>> trigger_suffixes("劳动者依照本法")
    ['本法']
    >>> trigger_suffixes("以及依法"), trigger_suffixes("以及依法", strong_only=True)
    (['依法', '法'], ['法'])
    """
    pattern = _STRONG_RE if strong_only else _TRIGGER_RE
    cuts = sorted({m.end() for i in range(len(run)) if (m := pattern.match(run, i))})
    return [run[c:] for c in cuts if c < len(run)]


class LawNames:
    """Resolves a law as written to the key of a law in the corpus: by its exact
    normalized title or a known alias; a shorter name inside a longer title only for bare
    titles, and for the citation check only after a trigger word (resolve_ref)."""

    def __init__(self, laws: Iterable[str]) -> None:
        self._by_name: dict[str, str] = {}
        for law in laws:
            self._by_name.setdefault(normalize_law_name(law), law)
        for alias, target in ALIASES.items():
            if target in self._by_name and alias not in self._by_name:
                self._by_name[alias] = self._by_name[target]

    def __contains__(self, law: str) -> bool:
        return self.resolve(law) is not None

    def exact(self, written: str) -> str | None:
        """The corpus key of exactly this title (normalized) or alias, else None."""
        return self._by_name.get(normalize_law_name(written))

    def resolve(self, written: str, *, bracketed: bool = False, strict: bool = False
                ) -> str | None:
        """The corpus key for a law name, or None.

        A title in 《》 (bracketed) resolves only as a whole: 《日本劳动法》 is no 劳动法.
        A bare title captured from running text may carry words in front of it. With
        strict (the citation check), they are cut off only after a trigger word (根据劳动
        合同法, 劳动者有本法), so 日本劳动法 stays unknown. Without it (retrieval reading a
        question, the index counting which laws cite which), the longest ending that names
        a law wins (请问劳动合同法 → 劳动合同法): there a wrong guess costs one extra
        candidate article, not a false label.
        """
        law = self.exact(written)
        if law is not None or bracketed:
            return law
        name = normalize_law_name(written)
        endings = trigger_suffixes(name) if strict else [name[i:] for i in range(1, len(name))]
        for cand in endings:
            if len(cand) >= 2 and (law := self.exact(cand)):
                return law
        return None

    def resolve_ref(self, ref: CitationRef) -> str | None:
        """The strict reading of a parsed citation, as the citation check needs it: exact
        in 《》, trigger-gated for a bare title."""
        return self.resolve(ref.law, bracketed=ref.bracketed, strict=True)


def named_law(ref: CitationRef) -> str | None:
    """The law a citation names as written, whether or not the corpus has it; None when a
    bare title names none (以及依法第十条).

    A bracketed title names itself; a bare one names the words after its last strong
    trigger word (根据劳动保障法 → 劳动保障法) or, with none, nothing.
    """
    if ref.bracketed:
        return ref.law
    names = [c for c in trigger_suffixes(ref.law, strong_only=True) if len(c) >= 2]
    return normalize_law_name(names[-1]) if names else None


# Words that stand for the citing article's own law (本法第三十八条, 本条例第五条).
SAME_LAW = ("本法", "本法典", "本条例", "本规定", "本办法", "本解释", "本细则", "本规则",
            "本决定", "本通则")
_BARE_ARTICLE_RE = re.compile(_ARTICLE)


@dataclass(frozen=True, slots=True)
class CrossReference:
    """An article that another article's text points to (依照本法第三十八条, 第X条规定的,
    依照《劳动法》第三十六条). law is the cited law as written, or "" for the citing
    article's own law; a caller resolves it with LawNames."""

    law: str
    number: int
    suffix: int
    start: int


def cross_references(text: str) -> list[CrossReference]:
    """Every article a statute's text refers to, in order, each once.

    A citation with a title names its law as written (a bare title may carry words in
    front of it: LawNames.resolve without strict cuts them); 本法 and the like mean the
    same law (law "");
    a bare 第X条 (第三十八条规定的, 前款和第五条) is an article of the same law.
    References to the article's own parts (本条第二款, 前款) name no article and are skipped.

    >>> [(r.law, r.number) for r in cross_references(
    ...     "劳动者依照本法第三十八条规定解除劳动合同的；依照《劳动法》第三十六条和第四十条；"
    ...     "适用民法典第五条")]
    [('', 38), ('劳动法', 36), ('劳动法', 40), ('适用民法典', 5)]
    >>> [(r.law, r.number) for r in cross_references("有第三十九条规定情形之一的，依照前款")]
    [('', 39)]
    """
    found: dict[tuple[str, int, int], CrossReference] = {}
    covered: list[tuple[int, int]] = []
    for ref in find_citations(text):
        covered.append((ref.start, ref.end))
        law = "" if ref.law.endswith(SAME_LAW) else ref.law
        found.setdefault((law, ref.number, ref.suffix),
                         CrossReference(law, ref.number, ref.suffix, ref.start))
    for m in _BARE_ARTICLE_RE.finditer(text):
        if any(s <= m.start() < e for s, e in covered):
            continue
        try:
            number = parse_numeral(_SPACE_RE.sub("", m.group("num")))
            suffix = parse_numeral(m.group("suf")) if m.group("suf") else 0
        except ValueError:
            continue
        found.setdefault(("", number, suffix), CrossReference("", number, suffix, m.start()))
    return sorted(found.values(), key=lambda r: r.start)


def reference_key(ref: CrossReference, citing_law: str,
                  resolve: Callable[[str], str | None]) -> tuple[str, int, int] | None:
    """The (law, number, suffix) a cross-reference in an article of citing_law points to:
    its own law for 本法 and a bare 第X条, else the law resolve (LawNames.resolve, or a
    cached form of it) finds; None when that names no law of the corpus."""
    law = resolve(ref.law) if ref.law else citing_law
    return (law, ref.number, ref.suffix) if law else None
