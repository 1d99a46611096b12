"""A decoding grammar per question: free text, but a citation only from the sources.

The post-hoc check (check.py) marks a citation the model made up; a grammar keeps it from
being written at all. With it, after 《 the model can only write one of the sources' law
names, after 》 only one of that law's source articles (or text that does not start a new
article number), and after [ only a source number. A bare 第N条 in running text (…和第四十条,
本法第十条) may only be a source article's number; 第 before anything else (第一，第三人,
第二款) is free. A source's number may not grow a suffix the source does not have:
《刑法》第二百六十四条 is not followed by 之一 (之规定 stays free). Everything else is free.

    >>> print(citation_grammar([a38, a46]))                          # doctest: +SKIP
    root ::= (free | cite | mark)* ...

The grammar is GBNF, which llama.cpp reads (llama-cpp-python's LlamaGrammar, and
llama-server's ``grammar`` request field for the HTTP backend).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from legalrag.records import Article

# Brackets a citation or a source marker starts with; free text never contains them, so
# every citation goes through the constrained rules. Full-width ［ and 【 are left out
# of free text too, so a marker cannot be written in a form the rules do not check.
OPENERS = "《[［【"
# What an article number is written with (第三十八条, 第38条, 第一千零八十四条), and the
# characters that may not follow 第 or its number outside a citation: 条 (or 條) ends
# an article number, and space would let 第 38 条 through.
NUMERALS = "零〇一二两三四五六七八九十百千0-9０-９"
NOT_AFTER_NUMBER = r"条條 \t\n　"


def gbnf_string(text: str) -> str:
    """text as a GBNF string literal.

    >>> print(gbnf_string('他说"是"'))
    "他说\\"是\\""
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _alternatives(options: Sequence[str]) -> str:
    return " | ".join(gbnf_string(o) for o in options)


def law_names(article: Article) -> list[str]:
    """How the model may write an article's law inside 《》: its short name, and its full
    title when that differs (中华人民共和国劳动合同法)."""
    return list(dict.fromkeys((article.law, article.law_title)))


# A title in 《》 that the question or a source writes: 《房地产经纪机构批准书》, or a law the
# sources refer to (《中华人民共和国民事诉讼法》). No 《》 inside, no line break.
_TITLE_RE = re.compile(r"《([^《》\n]{1,40})》")


def titles_in(text: str, sources: Sequence[Article] = ()) -> list[str]:
    """The titles written in 《》 in text that are not a source's law name, in order.

    >>> titles_in("未持有《房地产经纪机构批准书》的，依照《民事诉讼法》第十条")
    ['房地产经纪机构批准书', '民事诉讼法']
    """
    known = {n for a in sources for n in law_names(a)}
    return [t for t in dict.fromkeys(_TITLE_RE.findall(text)) if t not in known]


def citation_grammar(sources: Sequence[Article], opening: str = "",
                     titles: Sequence[str] = ()) -> str:
    """The GBNF grammar for an answer over these sources (numbered 1..n in order).

    opening (e.g. 根据): the answer must begin with it and a citation of one of the
    sources, so it always names its basis; the 1.5B model otherwise often wrote a
    sentence with no citation at all, or 第21条 without the law.

    titles (titles_in the question and the sources): other words the model may write in
    《》, never followed by an article number. Without them a model that set out to
    write 《房地产经纪机构批准书》 from the question was forced into a source's law name
    and repeated 《城市房地产管理法》第三十七条规定的 until the loop detector stopped it."""
    by_law: dict[str, list[Article]] = {}
    for a in sources:
        by_law.setdefault(a.law, []).append(a)
    closed = _class_escape(OPENERS) + "第"
    plain = f"[^{NUMERALS}{NOT_AFTER_NUMBER}{closed}]"
    # 第 outside a citation: a source article's number (the law is the checker's to read
    # from the context), or 第 and a number that is not an article's (第一，第三人,
    # 第二款), or 第 before a word that is not a number (次第). The second form is what
    # makes the first binding: its number may not be followed by 条.
    labels = [_alternatives([a.label[1:] for a in sources])] if sources else []
    after_number = f"({plain} | cite | mark)" if sources else plain
    ordinal = (f"ordinal ::= \"第\" ({' | '.join(f'({x}) suffixless' for x in labels)}"
               f"{' | ' if labels else ''}[{NUMERALS}]+ {after_number} | {plain})")
    if not sources:
        return f"root ::= (free | ordinal)*\nfree ::= [^{closed}]\n{ordinal}\n"
    start = f"{gbnf_string(opening)} cite " if opening else ""
    rules = [
        f"root ::= {start}(free | cite | mark | ordinal)*",
        f"free ::= [^{closed}]",
        # After 》 either an article of that law, or anything that does not begin 第…
        f"after ::= [^{closed}]",
        ordinal,
        # After a source's number: anything but 之 and a numeral (第二百六十四条之一 would
        # be another article, one the sources do not hold). It takes one character, so
        # an answer cannot end on the number itself; it ends on 。 anyway.
        f"suffixless ::= \"之\" [^{NUMERALS}{closed}] | [^之{closed}] | cite | mark | ordinal",
    ]
    cites = []
    for i, articles in enumerate(by_law.values()):
        names = law_names(articles[0])
        law_labels = list(dict.fromkeys(a.label for a in articles))
        rules.append(f"law{i} ::= ({_alternatives(names)}) \"》\" "
                     f"(({_alternatives(law_labels)}) suffixless | after)")
        cites.append(f"law{i}")
    if titles:
        rules.append(f"title ::= ({_alternatives(list(titles))}) \"》\" after")
        cites.append("title")
    rules.append(f"cite ::= \"《\" ({' | '.join(cites)})")
    numbers = [str(n) for n in range(1, len(sources) + 1)]
    rules.append(f"mark ::= \"[\" ({_alternatives(numbers)}) \"]\"")
    return "\n".join(rules) + "\n"


def _class_escape(chars: str) -> str:
    """chars for inside a GBNF character class ([ and ] escaped)."""
    return "".join("\\" + c if c in "[]\\^-" else c for c in chars)


__all__ = ["OPENERS", "citation_grammar", "gbnf_string", "law_names", "titles_in"]
