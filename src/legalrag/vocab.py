"""The product's shared vocabulary, defined once: retrieval modes and the citation labels,
each with the Chinese wording people see. The CLI, the web views, the checker and the
settings all import these names rather than spelling them again."""

from __future__ import annotations

import re

# -- retrieval modes -----------------------------------------------------------------------
HYBRID, BM25, DENSE = "hybrid", "bm25", "dense"
MODES = (HYBRID, BM25, DENSE)
MODE_NAMES = {HYBRID: "混合检索（推荐）", BM25: "关键词（BM25）", DENSE: "语义向量"}

# -- citation labels -----------------------------------------------------------------------
VERIFIED = "verified"  # an article among the sources, and the sentence citing it says so
UNSUPPORTED = "unsupported"  # among the sources, but the check could not confirm the claim
NOT_RETRIEVED = "not_retrieved"  # a real article, but not one of the sources
IN_FORCE = "in_force"  # (legalrag check, no sources) a real article in the version in force
INVENTED = "invented"  # no such law, article, paragraph or item in the corpus
REPEALED = "repealed"  # the law or article is no longer in force
# (answers) a reference inside words copied from a source (本法第三十九条 in a copy of
# 第二十一条): the statute's own text, not a claim of the answer, so neither ✓ nor a mark
QUOTED = "quoted"
MISQUOTED = "misquoted"  # text in “…” attributed to the article does not occur in it
UNRESOLVED = "unresolved"  # 本法第N条 with nothing to say which law: not checked, no error
INVALID = "invalid"  # cannot be read as a citation (a malformed number, a wrong [n])
LABELS = (VERIFIED, UNSUPPORTED, NOT_RETRIEVED, IN_FORCE, INVENTED, REPEALED, MISQUOTED,
          UNRESOLVED, INVALID, QUOTED)

LABEL_NAMES = {VERIFIED: "已核实", UNSUPPORTED: "未能核实此说法",
               NOT_RETRIEVED: "未在检索来源中", IN_FORCE: "现行有效",
               INVENTED: "法库中无此条文", REPEALED: "已失效", MISQUOTED: "引文与条文不符",
               UNRESOLVED: "未能确定所指法律", INVALID: "引用无效", QUOTED: "原文所引"}
LABEL_SIGNS = {VERIFIED: "✓", UNSUPPORTED: "?", NOT_RETRIEVED: "?", IN_FORCE: "✓",
               INVENTED: "✗", REPEALED: "✗", MISQUOTED: "✗", UNRESOLVED: "·", INVALID: "✗",
               QUOTED: "·"}
# What a ✓ promises, and what not: the sentence has its article behind it, but a sentence
# may state the rule and leave out the exception after it (但是……除外), which the support
# check accepts (docs/evaluation.md, "A fourth batch"). Shown beside every ✓.
VERIFIED_SCOPE = "有所引条文为据；条文中的例外、但书未必都已写出，请对照原文"
# What in_force promises (legalrag check and the 核查引用 tab), and what not: the article
# exists and is in force, nothing about the sentence around it (a browser session read ✓
# beside 抢劫罪规定在《刑法》第二百六十四条 as an endorsement). A sentence that copies the
# article with a word changed is misquoted instead (answer.check._check_changed_words).
IN_FORCE_SCOPE = "✓现行有效 只说明所引条文存在且现行有效，不说明文中的说法与条文相符"
# Written after a citation that is not verified, so it never appears unmarked.
MARKS = {
    UNSUPPORTED: f"〔{LABEL_NAMES[UNSUPPORTED]}，请核对原文〕",
    NOT_RETRIEVED: f"〔{LABEL_NAMES[NOT_RETRIEVED]}，请自行核对〕",
    IN_FORCE: f"〔{LABEL_NAMES[IN_FORCE]}〕",
    INVENTED: f"〔⚠{LABEL_NAMES[INVENTED]}〕",
    REPEALED: f"〔⚠{LABEL_NAMES[REPEALED]}〕",
    MISQUOTED: f"〔⚠{LABEL_NAMES[MISQUOTED]}〕",
    UNRESOLVED: f"〔{LABEL_NAMES[UNRESOLVED]}，未核对〕",
    INVALID: f"〔⚠{LABEL_NAMES[INVALID]}〕",
}
# A sentence of an answer that cites nothing (answer.check.uncited_sentences). It is not a
# citation and has no label among LABELS: it is marked so that a ✓ before it is not read as
# covering it. In the dev answers these were mostly the model's own conclusions (因此，…).
UNCITED_NAME = "未引条文"
UNCITED_MARK = f"〔{UNCITED_NAME}〕"
UNCITED_TITLE = "这句话没有引用条文，是模型自己的概括或推断，未经核实；请以条文原文为准"
# Such sentences are moved out of the answer, after it, under this heading (folded on
# screen): two reviewers found 73 of 158 of them wrong (data/eval/uncited_labels.jsonl,
# bench/uncited_review.py), most often a conclusion against the provision just quoted.
UNCITED_HEAD = "模型的推断（{n}句，未引条文，未经核实）"
UNCITED_WARNING = ("以下是模型自己的概括或推断，没有引用条文，未经核实。人工抽查中，这类句子"
                   "近半数与所引条文或案情不符，请勿据此行事，以上面引用的条文原文为准。")
# A ✓ sentence that copies a rule and leaves out the exception the article adds to it
# (answer.support.omitted_proviso): the ✓ stays, and the exception is shown beside it.
PROVISO_NAME = "另有例外"
PROVISO_MARK = "〔所引条文另有例外：{proviso}〕"
PROVISO_TITLE = "所引条文接着规定：“{proviso}”；这句话没有写出，请对照原文"
# Labels shown in red: the citation is wrong, not merely unchecked.
ERRORS = frozenset({INVENTED, REPEALED, MISQUOTED, INVALID})
# The worst label of a group decides how a shared span ([1,9]) is shown.
SEVERITY = {VERIFIED: 0, IN_FORCE: 0, QUOTED: 0, UNRESOLVED: 1, NOT_RETRIEVED: 2,
            UNSUPPORTED: 3, REPEALED: 4, INVALID: 5, MISQUOTED: 6, INVENTED: 7}


# -- text ---------------------------------------------------------------------------------
def bigrams(text: str) -> set[str]:
    """The CJK character bigrams of text (punctuation and Latin split runs).

    >>> sorted(bigrams("拖欠工资，辞职"))
    ['工资', '拖欠', '欠工', '辞职']
    """
    runs = re.split(r"[^\u4e00-\u9fff]+", text)
    return {run[i:i + 2] for run in runs for i in range(len(run) - 1)}
