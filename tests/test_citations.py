import pytest

from legalrag.citations import LawNames, find_citations, normalize_law_name

pytestmark = pytest.mark.fast  # pure functions: the fast tier (scripts/test.sh --fast)

NAMES = LawNames(["劳动合同法", "劳动法", "民法典", "刑法", "个体工商户条例", "刑法修正案（十一）",
                  "最高人民法院关于审理劳动争议案件适用法律问题的解释（一）"])


def cites(text):
    return [(NAMES.resolve(c.law), c.number, c.suffix, c.paragraph) for c in find_citations(text)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("《劳动合同法》第四十七条", [("劳动合同法", 47, 0, None)]),
        ("《中华人民共和国劳动合同法》第四十七条", [("劳动合同法", 47, 0, None)]),
        ("劳动合同法第47条怎么规定", [("劳动合同法", 47, 0, None)]),
        ("民法典第1079条", [("民法典", 1079, 0, None)]),
        ("根据中华人民共和国民法典第一千零七十九条", [("民法典", 1079, 0, None)]),
        ("刑法第一百三十三条之一", [("刑法", 133, 1, None)]),
        ("劳动法第三十六条第二款", [("劳动法", 36, 0, 2)]),
        ("《个体工商户条例》第二条", [("个体工商户条例", 2, 0, None)]),
        ("《刑法修正案（十一）》第一条", [("刑法修正案（十一）", 1, 0, None)]),
        ("《最高人民法院关于审理劳动争议案件适用法律问题的解释（一）》第三十二条",
         [("最高人民法院关于审理劳动争议案件适用法律问题的解释（一）", 32, 0, None)]),
        ("依照《劳动合同法》第三十九条、第四十条和第四十一条的规定",
         [("劳动合同法", 39, 0, None), ("劳动合同法", 40, 0, None), ("劳动合同法", 41, 0, None)]),
        ("民法典第103条和民法典第一千零三十二条",
         [("民法典", 103, 0, None), ("民法典", 1032, 0, None)]),
        ("刑法第十条与刑法第一十条", [("刑法", 10, 0, None), ("刑法", 10, 0, None)]),
        ("劳动法 第 三十六 条", []),  # spaces inside the numeral: not a citation
        ("第一百零三条", []),  # no law named
        ("没有引用任何条文", []),
    ],
)
def test_find_and_resolve(text, expected):
    assert cites(text) == expected


def test_unknown_and_generic_laws_do_not_resolve():
    refs = find_citations("《不存在法》第3条，本法第三十条")
    assert [c.law for c in refs] == ["不存在法", "本法"]
    assert [NAMES.resolve(c.law) for c in refs] == [None, None]


def test_spans_cover_the_citation():
    text = "请看《劳动合同法》第四十七条。"
    (c,) = find_citations(text)
    assert text[c.start : c.end] == "《劳动合同法》第四十七条"


def test_normalize_law_name():
    assert normalize_law_name("《中华人民共和国 民法典》") == "民法典"
    assert normalize_law_name("解释(一)") == "解释（一）"


def test_aliases_resolve_only_to_laws_in_the_corpus():
    names = LawNames(["刑事诉讼法"])
    assert names.resolve("刑诉法") == "刑事诉讼法"
    assert names.resolve("民诉法") is None
