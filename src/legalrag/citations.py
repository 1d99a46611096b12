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
from collections.abc import Iterable
from dataclasses import dataclass

from legalrag.numerals import NUMERAL_CHARS, parse_numeral

PRC = "中华人民共和国"
_NUM = rf"[{NUMERAL_CHARS}]+"
_ARTICLE = rf"第(?P<num>{_NUM})条(?:之(?P<suf>[一二三四五六七八九十]+))?(?:第(?P<para>{_NUM})款)?"
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

# Short names people use for laws whose titles they do not spell out.
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
}


@dataclass(frozen=True, slots=True)
class CitationRef:
    """One citation as written in a text, before it is resolved against a corpus."""

    law: str  # the law as written, without 《》
    number: int
    suffix: int  # 之一 -> 1
    paragraph: int | None  # 第二款 -> 2
    start: int  # character span in the text
    end: int
    raw: str
    bracketed: bool  # written as 《…》

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.law, self.number, self.suffix)


def normalize_law_name(name: str) -> str:
    """Comparable form of a law title: no 《》, spaces or 中华人民共和国, full-width brackets.

    >>> normalize_law_name("《中华人民共和国 民法典》")
    '民法典'
    """
    n = _SPACE_RE.sub("", name).translate(_NORMALIZE)
    if n.startswith("《") and n.endswith("》"):
        n = n[1:-1]
    return n.removeprefix(PRC).replace("《" + PRC, "《")


def find_citations(text: str) -> list[CitationRef]:
    """Every citation in text, in order. Malformed numerals are skipped, never guessed.

    >>> [(c.law, c.number, c.suffix) for c in find_citations("刑法第一百三十三条之一和第二条")]
    [('刑法', 133, 1), ('刑法', 2, 0)]
    """
    out: list[CitationRef] = []
    for m in CITATION_RE.finditer(text):
        law = m.group("btitle") or m.group("title")
        ref = _ref(m, law, m.start(), bool(m.group("btitle")))
        if ref is None:
            continue
        out.append(ref)
        pos = m.end()
        while c := CONTINUATION_RE.match(text[pos:]):
            nxt = _ref(c, law, pos + c.start(), ref.bracketed, offset=pos)
            if nxt is None:
                break
            out.append(nxt)
            pos += c.end()
    return out


def _ref(m: re.Match[str], law: str, start: int, bracketed: bool,
         offset: int = 0) -> CitationRef | None:
    try:
        number = parse_numeral(m.group("num"))
        suffix = parse_numeral(m.group("suf")) if m.group("suf") else 0
        para = parse_numeral(m.group("para")) if m.group("para") else None
    except ValueError:
        return None
    end = offset + m.end()
    raw = m.string[m.start():m.end()] if not offset else m.group(0).lstrip("、，,和及以或者 ")
    return CitationRef(normalize_law_name(law), number, suffix, para, start, end, raw, bracketed)


class LawNames:
    """Resolves a law as written (full title, short title, alias, with a prefix of other
    words in front) to the key of a law in the corpus."""

    def __init__(self, laws: Iterable[str]) -> None:
        self._by_name: dict[str, str] = {}
        for law in laws:
            self._by_name.setdefault(normalize_law_name(law), law)
        for alias, target in ALIASES.items():
            if target in self._by_name and alias not in self._by_name:
                self._by_name[alias] = self._by_name[target]

    def __contains__(self, law: str) -> bool:
        return self.resolve(law) is not None

    def resolve(self, written: str) -> str | None:
        """The corpus key for a law name, or None.

        A bare title captured from running text may carry words in front of it
        (根据劳动合同法): the longest suffix that names a law wins.
        """
        name = normalize_law_name(written)
        for i in range(len(name)):
            cand = name[i:]
            if len(cand) < 2:
                break
            hit = self._by_name.get(cand) or self._by_name.get(cand.removeprefix(PRC))
            if hit:
                return hit
        return None
