"""Plain, immutable records that flow between the stages.

Article comes out of the corpus parser, Hit out of retrieval. Ids are derived from
content (law, version, article number), so a rebuild keeps them stable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def article_id(law: str, version: str, number: int, suffix: int) -> str:
    """Stable id of one article: a short hash of law short title, version and number.

    >>> article_id("劳动法", "2018-12-29", 36, 0) == article_id("劳动法", "2018-12-29", 36, 0)
    True
    """
    key = f"{law}\x1f{version}\x1f{number}\x1f{suffix}"
    return hashlib.blake2b(key.encode("utf-8"), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Article:
    """One article (条) of one version of one law, with all its paragraphs (款, 项)."""

    law_title: str  # full title: 中华人民共和国劳动法
    law: str  # short title, the law's key: 劳动法
    level: str  # 法律 / 行政法规 / 司法解释 / 部门规章 / 宪法 / 其他 ...
    category: str  # the corpus folder: 社会法, 部门规章/公安部 ...
    path: tuple[str, ...]  # hierarchy: (编, 分编, 章, 节) as far as the file has them
    number: int  # 219 for 第二百一十九条之一
    suffix: int  # 1 for 之一, 0 otherwise
    label: str  # 第二百一十九条之一
    text: str  # the full text, paragraphs joined by newlines (label not repeated)
    version: str  # ISO date of the version, or "" where the corpus gives none
    in_force: bool  # newest version and not marked expired
    source: str  # corpus-relative path of the file
    line: int  # line in that file where the article starts

    @property
    def id(self) -> str:
        return article_id(self.law, self.version, self.number, self.suffix)

    @property
    def citation(self) -> str:
        """How a person cites it: 《劳动法》第三十六条."""
        return f"《{self.law}》{self.label}"

    @property
    def heading(self) -> str:
        """law › 编/章/节 › 第N条, as shown in source panels."""
        return " › ".join((self.law, *self.path, self.label))


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved article with how each retriever ranked it (rank 1 is best)."""

    article: Article
    score: float  # the score that ordered the list: the reranker's, else RRF × prior
    rank: int
    ranks: dict[str, int] = field(default_factory=dict)  # retriever -> rank
    scores: dict[str, float] = field(default_factory=dict)  # retriever -> raw score

    @property
    def via(self) -> str:
        """Which retrievers found it, e.g. 'lookup' or 'bm25+dense'."""
        return "+".join(sorted(self.ranks)) or "none"

    def to_dict(self) -> dict:
        a = self.article
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "id": a.id,
            "law": a.law,
            "law_title": a.law_title,
            "label": a.label,
            "number": a.number,
            "suffix": a.suffix,
            "path": list(a.path),
            "text": a.text,
            "version": a.version,
            "in_force": a.in_force,
            "level": a.level,
            "source": a.source,
            "ranks": dict(self.ranks),
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
        }
