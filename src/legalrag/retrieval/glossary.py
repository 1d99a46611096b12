"""Everyday words to statute words: the terms a question's wording stands for.

People ask 周末加班，加班费怎么算？; the article says 休息日安排劳动者工作…支付不低于工资的
百分之二百的工资报酬. They ask whether a 十六岁 child's contract holds; the rule is about a
限制民事行为能力人. BM25 matches only shared words, and the query encoder learned the
wording of 1,000 questions, not of every asker. A hand-written glossary
(data/glossary.txt, written from the statutes' own terms) names what such words stand
for, and the search reads the question with those terms after it (Settings.query_glossary).

Three readings are rules rather than words: an age (十六岁, 7周岁) is the age and capacity
terms the statutes use (已满十六周岁, 未成年人, 限制民事行为能力人); money lent or owed
for years (借钱给朋友三年了没还) is a question about the 诉讼时效, not about the loan; and a
judgment the other side does not obey (判了他也不还) is one for 申请执行.

>>> g = Glossary.load()
>>> g.terms("周末加班，加班费怎么算？")
['休息日', '延长工作时间']
>>> g.terms("十六岁的孩子自己签的买卖合同有效吗？")
['已满十六周岁', '未成年人', '限制民事行为能力人']
>>> g.expand("试用期最长多久？")
'试用期最长多久？'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from legalrag.errors import InputFileError
from legalrag.numerals import parse_numeral, to_chinese

GLOSSARY_FILE = "glossary.txt"
MAX_TERMS = 8  # a question that matches more is already in statute words
ADULT_AGE = 18  # 民法典第十七条
CAPACITY_AGE = 8  # 民法典第十九条、第二十条
# The ages at which criminal responsibility changes below 16 (刑法第十七条): a child
# between two of them is written 已满十四周岁不满十六周岁, never 已满十五周岁. (17 has no band:
# 刑法 never writes 已满十六周岁不满十八周岁.)
CRIMINAL_AGES = (12, 14, 16)
CHARGE = "罪"  # 医疗事故罪 names a crime: its 医疗事故 is not the everyday word

_NUMBER = r"\d{1,3}|[一二两三四五六七八九十]{1,3}"
_AGE_RE = re.compile(rf"(?<![第\d一二两三四五六七八九十])({_NUMBER})\s*(?:周)?岁")
_YEARS = rf"(?:{_NUMBER}|好几|几|多)\s*年"
_UNPAID = r"(?:没|不|未)(?:有)?(?:还|给|付|要|讨|追|起诉|告)"
# 三年了没还 and 欠钱不还过了好几年: the years before or after the unpaid debt
_LENT = r"(?:(?:借|欠)[^。？！?!，,]{0,8}?)?"
_OWED_RE = re.compile(rf"{_LENT}{_YEARS}(?:了|多|以上|前)?[^。？！?!]{{0,12}}?{_UNPAID}"
                      rf"|欠[^。？！?!]{{0,6}}?{_UNPAID}[^。？！?!]{{0,8}}?{_YEARS}")
# 判了他也不还: a judgment the other side does not obey is for the court to enforce
_UNOBEYED_RE = re.compile(r"(?:判了|判决|判令|判他|判对方|调解书|裁决)[^。？！?!]{0,12}?"
                          r"(?:不|没|未)(?:有)?(?:给|还|付|履行|执行|搬|赔)")
ENFORCEMENT_TERMS = ("申请执行", "发生法律效力的判决")
# 民法典第一百八十八条: 向人民法院请求保护民事权利的诉讼时效期间为三年
LIMITATION_TERMS = ("诉讼时效", "诉讼时效期间", "请求保护民事权利")


@dataclass(frozen=True, slots=True)
class Glossary:
    """Everyday words (each with the statute terms it stands for), longest first."""

    entries: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def load(cls) -> Glossary:
        file = resources.files("legalrag.data").joinpath(GLOSSARY_FILE)
        return cls.parse(file.read_text("utf-8"), str(file))

    @classmethod
    def parse(cls, text: str, path: str = GLOSSARY_FILE) -> Glossary:
        """Lines `word|word = term term`; # starts a comment. InputFileError names a bad
        line of path."""
        entries: dict[str, tuple[str, ...]] = {}
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            words, sep, terms = line.partition("=")
            if not sep or not words.strip() or not terms.split():
                raise InputFileError(path, n, f"{line!r} is not `everyday words = statute "
                                     "terms`", fix="write the line as 加班 = 延长工作时间 "
                                     "加班费, or set query_glossary = false")
            for word in filter(None, (w.strip() for w in words.split("|"))):
                entries[word] = entries.get(word, ()) + tuple(terms.split())
        return cls(tuple(sorted(entries.items(), key=lambda e: -len(e[0]))))

    def terms(self, question: str) -> list[str]:
        """The statute terms the question's words stand for and it does not hold, each
        once, at most MAX_TERMS: the rules' terms (an age, years of debt) first, then the
        words' in the order they come in the question."""
        found: list[tuple[int, str]] = []
        taken = [False] * len(question)  # a longer word's span hides the shorter ones in it
        # the rules' terms first: they name the legal issue, the words' terms the topic.
        # Money owed for years is a question of time limits, and its words (借钱, 欠款)
        # are read by the rule, not as the loan they name.
        found += [(-1, t) for m in _AGE_RE.finditer(question) for t in age_terms(m.group(1))]
        if (owed := _OWED_RE.search(question)) is not None:
            found += [(-1, t) for t in LIMITATION_TERMS]
            taken[owed.start():owed.end()] = [True] * (owed.end() - owed.start())
        if _UNOBEYED_RE.search(question) is not None:
            found += [(-1, t) for t in ENFORCEMENT_TERMS]
        for word, terms in self.entries:
            start = question.find(word)
            while start >= 0 and (any(taken[start:start + len(word)])
                                  or question.startswith(CHARGE, start + len(word))):
                start = question.find(word, start + 1)
            if start < 0:
                continue
            taken[start:start + len(word)] = [True] * len(word)
            found += [(start, t) for t in terms]
        out: list[str] = []
        for _, term in sorted(found, key=lambda f: f[0]):
            if term not in out and term not in question:
                out.append(term)
        return out[:MAX_TERMS]

    def expand(self, question: str) -> str:
        """The question with its statute terms after it (（休息日 延长工作时间）), or as it
        was when it has none."""
        terms = self.terms(question)
        return f"{question}（{' '.join(terms)}）" if terms else question


def age_terms(number: str) -> tuple[str, ...]:
    """How the statutes speak of a person of this age: 已满N周岁, between two ages of
    criminal responsibility below 16 the band around it (15: 已满十四周岁不满十六周岁), and under 18
    the capacity the 民法典 gives them. An age that is not a number says nothing."""
    try:
        age = parse_numeral(number)
    except ValueError:
        return ()
    if not 0 < age < 120:
        return ()
    said: tuple[str, ...] = (f"已满{to_chinese(age)}周岁",)
    if age >= ADULT_AGE:
        return said
    for low, high in zip(CRIMINAL_AGES, CRIMINAL_AGES[1:], strict=False):
        if low < age < high:  # an age at a boundary (已满十四周岁) is said as it is
            said = (*said, f"已满{to_chinese(low)}周岁不满{to_chinese(high)}周岁")
    return (*said, "未成年人",
            "限制民事行为能力人" if age >= CAPACITY_AGE else "无民事行为能力人")
