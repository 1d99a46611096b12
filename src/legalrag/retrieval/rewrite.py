"""Multi-turn: rewriting a follow-up question into a standalone query for retrieval.

"那如果是试用期呢？" after "公司辞退员工要给经济补偿吗？" retrieves nothing useful on its own.
It is rewritten to "公司辞退员工要给经济补偿吗；如果是试用期" and the rewrite is returned with
the answer, so the UI can show what was searched.

Why a deterministic rewrite and not the chat model: on 2 CPU cores an LLM rewrite costs a
prefill and a short decode (5–10 s) before retrieval can even start, which breaks the
"sources on screen within 1 s" target. BM25 and the dense encoder both match on content
words, so carrying the previous question's words into the query recovers the topic; the
model still sees the user's own words next to the rewrite. The rule is transparent and
testable: a question is a follow-up when there is history and it opens with a follow-up
marker (那/那么/如果/要是…), ends in 呢, points back (这种情况/上述/对方…), or is very
short — unless it cites an article itself, which makes it standalone.

    >>> rewrite_query("那如果是试用期呢？", [Turn("公司辞退员工要给经济补偿吗？")])
    '公司辞退员工要给经济补偿吗；如果是试用期'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from legalrag.citations import find_citations

# Openers that mark a follow-up. Longest first, so 那如果 is seen whole.
_FOLLOWUP_OPENERS = ("那么如果", "那如果", "那要是", "那假如", "那万一", "那么", "那", "如果",
                     "要是", "假如", "假设", "万一", "还有", "另外", "此外", "然后", "但是",
                     "可是", "而且", "同样", "再问")
# Discourse words dropped from the follow-up when it is joined to the anchor; conditions
# (如果, 要是 …) stay, they carry meaning.
_DROPPED = ("那么", "那", "还有", "另外", "此外", "然后", "而且", "再问", "请问")
_POINTERS = ("这种情况", "这种", "这样", "这个", "那种", "此时", "此种", "上述", "前面", "刚才",
             "上面", "该情况", "对方", "他们", "她们", "他", "她", "它")
_TRAILING = "？?。！!，,；; \t\n"
SHORT_QUESTION = 5  # characters, without punctuation: "赔偿多少？" cannot stand alone
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
    """Whether question leans on the previous turn (see the module docstring)."""
    if not history:
        return False
    q = _core(question)
    if find_citations(q):
        return False
    return (q.startswith(_FOLLOWUP_OPENERS) or q.endswith("呢") or any(p in q for p in _POINTERS)
            or len(re.sub(r"\W", "", q)) <= SHORT_QUESTION)


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
