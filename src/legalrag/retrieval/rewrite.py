"""Multi-turn: rewriting a follow-up question into a standalone query for retrieval.

"那如果是试用期呢？" after "公司辞退员工要给经济补偿吗？" retrieves nothing useful on its own.
It is rewritten to "公司辞退员工要给经济补偿吗；如果是试用期" and the rewrite is returned with
the answer, so the UI can show what was searched.

Why a deterministic rewrite and not the chat model: on 2 CPU cores an LLM rewrite costs a
prefill and a short decode (5–10 s) before retrieval can even start, which breaks the
"sources on screen within 1 s" target. BM25 and the dense encoder both match on content
words, so carrying the previous question's words into the query recovers the topic; the
model still sees the user's own words next to the rewrite. The rule is transparent and
testable: a question is a follow-up only when it is elliptical, that is when there is
history, it cites no article itself, and it either is very short (赔偿多少？), opens with
那/那么/那如果 … or points back at its start (这种情况/上述/此时 …) while staying short, or
opens with a condition (如果/要是 …), ends in 呢 or mentions 对方 while being shorter than a
standalone question can be. A longer question that tells its own facts (我在一家公司工作了五年，
公司拖欠三个月工资……) is searched on its own, whatever came before it.

    >>> rewrite_query("那如果是试用期呢？", [Turn("公司辞退员工要给经济补偿吗？")])
    '公司辞退员工要给经济补偿吗；如果是试用期'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from legalrag.citations import find_citations

# Openers that refer back to the previous question by themselves. Longest first.
_STRONG_OPENERS = ("那么如果", "那如果", "那要是", "那假如", "那万一", "那么", "那")
# Back-references that open an elliptical question.
_POINTER_OPENERS = ("这种情况", "这种", "这样", "此时", "此种", "上述", "前面", "刚才", "上面",
                    "该情况", "那种")
# Openers and words that are elliptical only in a short question: 如果他不同意呢 leans on
# the last turn, 如果公司在试用期内无故辞退我，要赔偿吗 does not.
_WEAK_OPENERS = ("如果", "要是", "假如", "假设", "万一", "还有", "另外", "此外", "然后", "但是",
                 "可是", "而且", "同样", "再问")
_WEAK_POINTERS = ("这种情况", "这种", "这样", "这个", "那种", "此时", "上述", "对方")
# Discourse words dropped from the follow-up when it is joined to the anchor; conditions
# (如果, 要是 …) stay, they carry meaning.
_DROPPED = ("那么", "那", "还有", "另外", "此外", "然后", "而且", "再问", "请问")
_TRAILING = "？?。！!，,；; \t\n"
SHORT_QUESTION = 5  # characters, without punctuation: "赔偿多少？" cannot stand alone
WEAK_LIMIT = 15  # a question this short with a weak marker leans on the last turn
STRONG_LIMIT = 30  # 那…/这种情况… questions longer than this tell their own story
JOINER = "；"
MAX_FOLLOWUPS_KEPT = 1  # the anchor question plus the previous follow-up


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier exchange, as far as retrieval needs it."""

    question: str
    rewritten_query: str = ""  # empty when the question was used as it was

    @property
    def query(self) -> str:
        return self.rewritten_query or self.question


def _core(text: str) -> str:
    """text without trailing punctuation and a final 呢/吗 particle after a follow-up."""
    return text.strip().rstrip(_TRAILING)


def is_followup(question: str, history: Sequence[Turn]) -> bool:
    """Whether question is elliptical and leans on the previous turn (module docstring)."""
    if not history:
        return False
    q = _core(question)
    if find_citations(q):
        return False
    n = len(re.sub(r"\W", "", q))
    if n <= SHORT_QUESTION:
        return True
    if q.startswith(_STRONG_OPENERS + _POINTER_OPENERS):
        return n <= STRONG_LIMIT
    weak = q.startswith(_WEAK_OPENERS) or q.endswith("呢") or any(p in q for p in _WEAK_POINTERS)
    return weak and n <= WEAK_LIMIT


def _strip_followup(question: str) -> str:
    q = _core(question)
    for word in _DROPPED:
        if q.startswith(word) and len(q) > len(word):
            q = q[len(word):].lstrip("，, ")
            break
    return q.removesuffix("呢").rstrip(_TRAILING)


def rewrite_query(question: str, history: Sequence[Turn]) -> str:
    """The standalone retrieval query for question given the earlier turns (oldest first).

    A standalone question is returned as it is (stripped). A follow-up is joined to the
    previous turn's query: its anchor (the last standalone question) and at most one
    earlier follow-up, so the query stays focused in a long conversation.
    """
    q = question.strip()
    if not is_followup(q, history):
        return q
    chain = history[-1].query.split(JOINER)
    kept = [chain[0], *chain[1:][-MAX_FOLLOWUPS_KEPT:]]
    return JOINER.join([_core(kept[0]), *kept[1:], _strip_followup(q)])
