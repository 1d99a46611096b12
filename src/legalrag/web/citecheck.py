"""The 核查引用 tab's action, gradio-free: label every citation of pasted text against the
live index (answer.check.check_text, the function behind `legalrag check` and the answer
check) and render it (views.render_check).

The corpus facts are the live build's (answer.assistant.corpus_facts: built once per build
from its article list and shared with the chat's answer check), never a model.

    >>> CitationCheck(live).run("依照《劳动合同法》第四十七条")   # doctest: +SKIP
    '<div class="lr-check-summary">共 1 处引用：现行有效 1……'
"""

from __future__ import annotations

from legalrag.answer.assistant import corpus_facts
from legalrag.answer.check import CorpusFacts, check_text
from legalrag.errors import LegalRagError
from legalrag.retrieval.live import LiveRetriever
from legalrag.web import views

MAX_CHECK_CHARS = 200_000  # a long judgment is ~50,000 characters


class CitationCheck:
    """Checks pasted text against the live index's corpus."""

    def __init__(self, live: LiveRetriever) -> None:
        self.live = live

    def facts(self) -> CorpusFacts:
        return corpus_facts(self.live.get())

    def run(self, text: object) -> str:
        """The tab's HTML for text: labelled citations, or a message saying what is wrong."""
        if not isinstance(text, str):
            return views.render_error("请粘贴文字")
        if len(text) > MAX_CHECK_CHARS:
            return views.render_error(f"文字有 {len(text):,} 字，超过上限 {MAX_CHECK_CHARS:,} 字："
                                      "请分段核查，或在命令行运行 legalrag check 文件名")
        try:
            facts = self.facts()
        except LegalRagError as e:
            return views.render_error(f"索引暂不可用，无法核查：{e}")
        return views.render_check(text, check_text(text, facts))
