"""Chinese word segmentation for BM25: one Segmenter used by indexing and querying alike.

jieba, with a user dictionary generated from the corpus (law short titles, terms from
article and chapter headings) plus a list of common legal terms, and a stopword list.
Article references are normalized before jieba sees them, so that 第四十七条 and 第47条
both become the single token 第47条.

    >>> seg = Segmenter(terms=["劳动合同法"])          # doctest: +SKIP
    >>> seg.tokenize("劳动合同法第四十七条怎么规定的？")  # doctest: +SKIP
    ['劳动', '合同', '劳动合同', '劳动合同法', '第47条', '规定']
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from legalrag.numerals import NUMERAL_CHARS, parse_numeral

log = logging.getLogger(__name__)

SEGMENTER_NAME = "jieba-search-v1"  # bump when tokenization changes: indexes must rebuild
REF_RE = re.compile(rf"第([{NUMERAL_CHARS}]+)(条|款|项|章|节|编)(?:之([一二三四五六七八九十]+))?")
_PUNCT_RE = re.compile(r"^[\W_]+$")
_HEADING_NUMBER_RE = re.compile(rf"^第[{NUMERAL_CHARS}]+[编章节条]\s*")
_TERM_SPLIT_RE = re.compile(r"[，、。；：\s和与及的或]+")


def _data_lines(name: str) -> list[str]:
    text = resources.files("legalrag.data").joinpath(name).read_text("utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def legal_terms() -> list[str]:
    """The hand-written list of common legal terms shipped with the package."""
    return _data_lines("legal_terms.txt")


def stopwords() -> frozenset[str]:
    return frozenset(_data_lines("stopwords.txt"))


def normalize_refs(text: str) -> str:
    """Write every 第N条/款/项/章/节/编 reference with Arabic numerals.

    >>> normalize_refs("依照第四十七条第二款")
    '依照第47条第2款'
    """

    def sub(m: re.Match[str]) -> str:
        try:
            n = parse_numeral(m.group(1))
            tail = f"之{parse_numeral(m.group(3))}" if m.group(3) else ""
        except ValueError:
            return m.group(0)
        return f"第{n}{m.group(2)}{tail}"

    return REF_RE.sub(sub, text)


def corpus_terms(law_titles: Iterable[str], headings: Iterable[str]) -> list[str]:
    """Dictionary terms drawn from the corpus: law short titles and heading phrases.

    Chapter titles such as 劳动合同的解除和终止 are split on 的/和/与/、 into terms of 2 to 8
    characters; law short titles are kept whole so a title never splits mid-name.
    """
    terms: set[str] = set()
    for t in law_titles:
        if 2 <= len(t) <= 20:
            terms.add(t)
    for h in headings:
        h = _HEADING_NUMBER_RE.sub("", h.strip())
        for part in _TERM_SPLIT_RE.split(h):
            if 2 <= len(part) <= 8 and not any(c.isdigit() for c in part):
                terms.add(part)
    return sorted(terms)


class Segmenter:
    """jieba tokenizer with the legal user dictionary and stopwords; one per index.

    Tokenization is jieba's search mode (words plus their in-dictionary sub-words), so a
    question's 劳动合同 matches an article's 劳动合同法 and vice versa.
    """

    def __init__(self, terms: Iterable[str] = ()) -> None:
        import jieba

        self.terms = sorted(set(terms) | set(legal_terms()))
        self.stopwords = stopwords()
        self._jieba = jieba.Tokenizer()
        jieba.setLogLevel(logging.WARNING)
        self._jieba.initialize()
        for t in self.terms:
            self._jieba.add_word(t, freq=max(2000, 200 * len(t)))

    @property
    def dictionary_hash(self) -> str:
        """Hash of everything that decides tokens: the terms, stopwords and scheme name."""
        h = hashlib.sha256(SEGMENTER_NAME.encode())
        for t in self.terms:
            h.update(t.encode() + b"\n")
        h.update(b"\x00")
        for s in sorted(self.stopwords):
            h.update(s.encode() + b"\n")
        return h.hexdigest()[:16]

    def tokenize(self, text: str) -> list[str]:
        """Tokens of text for BM25: references normalized, stopwords and punctuation dropped."""
        text = normalize_refs(text)
        out: list[str] = []
        pos = 0
        for m in _NORMAL_REF_RE.finditer(text):
            out.extend(self._cut(text[pos : m.start()]))
            out.append(m.group(0))
            pos = m.end()
        out.extend(self._cut(text[pos:]))
        return out

    def _cut(self, text: str) -> list[str]:
        if not text.strip():
            return []
        return [
            w for w in (t.strip().lower() for t in self._jieba.cut_for_search(text, HMM=True))
            if w and w not in self.stopwords and not _PUNCT_RE.match(w)
        ]

    def save(self, path: Path) -> None:
        path.write_text("\n".join(self.terms) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Segmenter:
        terms = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln]
        return cls(terms)


_NORMAL_REF_RE = re.compile(r"第\d+(?:条|款|项|章|节|编)(?:之\d+)?")
