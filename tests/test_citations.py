import pytest

from legalrag.citations import LawNames, find_citations, named_law, normalize_law_name

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
        # whitespace around the number is accepted (issue 11), inside it is not
        ("劳动法 第 三十六 条", [("劳动法", 36, 0, None)]),
        ("《劳动合同法》第 47 条", [("劳动合同法", 47, 0, None)]),
        ("《劳动合同法》第４７条", [("劳动合同法", 47, 0, None)]),
        ("《劳动合同法》第 4 7 条", []),
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


# -- issue 11: a title resolves by its exact name or an alias, never by a shorter name ------

TRAPS = LawNames(["劳动法", "民法典", "数据安全法", "劳动合同法", "刑法修正案",
                  "刑法修正案（十一）"])


@pytest.mark.parametrize(
    "text, law, named",
    [
        ("《日本劳动法》第三十六条", None, "日本劳动法"),
        ("《美国民法典》第十条", None, "美国民法典"),
        ("《网络数据安全法》第十条", None, "网络数据安全法"),
        ("《劳动法实施细则》第二条", None, "劳动法实施细则"),
        ("日本劳动法第三十六条", None, None),  # bare, no trigger word: names no known law
        ("根据日本劳动法第三十六条", None, "日本劳动法"),  # after 根据: a law, an unknown one
        ("以及依法第十条", None, None),  # 依法 is no law
        ("根据中华人民共和国民法典第十条", "民法典", "民法典"),
        ("依照劳动合同法第三十九条", "劳动合同法", "劳动合同法"),
        ("劳动者有劳动合同法第三十九条", "劳动合同法", None),  # after 有: a known law only
        ("该情形属于劳动合同法第三十九条", "劳动合同法", None),  # 属于, 符合: the same
        ("不符合劳动合同法第三十九条", "劳动合同法", None),
        ("属于日本劳动法第三十六条", None, None),
        # 就, 对于 (copied from a 司法解释: 经营者就消费者权益保护法第二十五条第一款规定的…)
        ("经营者就劳动合同法第三十九条", "劳动合同法", None),
        ("对于劳动合同法第三十九条", "劳动合同法", None),
        ("对于日本劳动法第三十六条", None, None),
        ("《中华人民共和国民法典》第十条", "民法典", "民法典"),
        ("《中华人民共和国　民法典》第十条", "民法典", "民法典"),  # full-width space
        ("《刑法修正案（十一）》第一条", "刑法修正案（十一）", "刑法修正案（十一）"),
        ("《刑法修正案(十一)》第一条", "刑法修正案（十一）", "刑法修正案（十一）"),
        ("《刑法修正案（一）》第一条", "刑法修正案", "刑法修正案（一）"),
        ("《依照劳动法》第一条", None, "依照劳动法"),  # in 《》 the whole title counts
    ],
)
def test_titles_resolve_exactly(text, law, named):
    (ref,) = find_citations(text)
    assert TRAPS.resolve_ref(ref) == law
    assert named_law(ref) == named


def test_resolve_never_strips_a_bracketed_title():
    assert TRAPS.resolve("日本劳动法", bracketed=True) is None
    assert TRAPS.resolve("日本劳动法", strict=True) is None  # no trigger word inside
    assert TRAPS.resolve("依据劳动法", strict=True) == "劳动法"
    assert TRAPS.resolve("依据劳动法", bracketed=True) is None
    # Retrieval reads a question loosely (an extra candidate, never a label).
    assert TRAPS.resolve("请问劳动合同法") == "劳动合同法"
    assert TRAPS.resolve("请问劳动合同法", strict=True) is None


def test_malformed_numbers_are_kept_only_when_asked():
    text = "《劳动法》第二百一条、第十十条和《劳动法》第三十六条"
    assert [(c.number, c.error != "") for c in find_citations(text)] == [(36, False)]
    got = find_citations(text, malformed=True)
    assert [(c.raw, c.number, bool(c.error)) for c in got] == [
        ("《劳动法》第二百一条", 0, True), ("第十十条", 0, True),
        ("《劳动法》第三十六条", 36, False)]


def test_paragraphs_and_items():
    got = find_citations("劳动合同法第三十九条第一款第（二）项，劳动合同法第四十条第三项，"
                         "劳动法第三十六条第 2 款")
    assert [(c.number, c.paragraph, c.item) for c in got] == [(39, 1, 2), (40, None, 3),
                                                              (36, 2, None)]
