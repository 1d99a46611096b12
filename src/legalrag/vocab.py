"""The product's shared vocabulary, defined once: retrieval modes and the citation labels,
each with the Chinese wording people see. The CLI, the web views, the checker and the
settings all import these names rather than spelling them again."""

from __future__ import annotations

# -- retrieval modes -----------------------------------------------------------------------
HYBRID, BM25, DENSE = "hybrid", "bm25", "dense"
MODES = (HYBRID, BM25, DENSE)
MODE_NAMES = {HYBRID: "混合检索（推荐）", BM25: "关键词（BM25）", DENSE: "语义向量"}

# -- citation labels -----------------------------------------------------------------------
VERIFIED = "verified"  # an article among the sources the answer was given
NOT_RETRIEVED = "not_retrieved"  # a real article, but not one of the sources
INVENTED = "invented"  # no such law or article in the corpus
REPEALED = "repealed"  # the law or article is no longer in force
INVALID = "invalid"  # cannot be read as a citation (a malformed number)
LABELS = (VERIFIED, NOT_RETRIEVED, INVENTED, REPEALED, INVALID)

LABEL_NAMES = {VERIFIED: "已核实", NOT_RETRIEVED: "未在检索来源中", INVENTED: "法库中无此条文",
               REPEALED: "已失效", INVALID: "引用无效"}
LABEL_SIGNS = {VERIFIED: "✓", NOT_RETRIEVED: "?", INVENTED: "✗", REPEALED: "✗", INVALID: "✗"}
# Written after a citation that is not verified, so it never appears unmarked.
MARKS = {
    NOT_RETRIEVED: f"〔{LABEL_NAMES[NOT_RETRIEVED]}，请自行核对〕",
    INVENTED: f"〔⚠{LABEL_NAMES[INVENTED]}〕",
    REPEALED: f"〔⚠{LABEL_NAMES[REPEALED]}〕",
    INVALID: f"〔⚠{LABEL_NAMES[INVALID]}〕",
}
# The worst label of a group decides how a shared span ([1,9]) is shown.
SEVERITY = {VERIFIED: 0, NOT_RETRIEVED: 1, REPEALED: 2, INVALID: 3, INVENTED: 4}
