"""The glossary of everyday words: what it adds to a question, and the search with it."""

from dataclasses import replace

import pytest

from legalrag.errors import InputFileError
from legalrag.retrieval.glossary import (
    ENFORCEMENT_TERMS,
    LIMITATION_TERMS,
    MAX_TERMS,
    Glossary,
    age_terms,
)
from legalrag.retrieval.retriever import Retriever

SMALL = Glossary.parse("""
# a comment
加班 = 延长工作时间 加班费
周末|周六 = 休息日
无故辞退 = 违法解除劳动合同
辞退 = 解除劳动合同
""")


@pytest.mark.fast
def test_terms_come_in_the_order_of_their_words_each_once():
    assert SMALL.terms("周末加班，周六也加班") == ["休息日", "延长工作时间", "加班费"]
    assert SMALL.expand("周六加班费怎么算") == "周六加班费怎么算（休息日 延长工作时间）"


@pytest.mark.fast
def test_a_term_the_question_holds_is_not_added():
    assert SMALL.terms("加班费和延长工作时间") == []
    assert SMALL.expand("试用期多久") == "试用期多久"


@pytest.mark.fast
def test_a_longer_word_hides_the_shorter_one_inside_it():
    # 无故辞退 is read, not 辞退 within it
    assert SMALL.terms("被无故辞退了") == ["违法解除劳动合同"]
    assert SMALL.terms("被无故辞退了，后来又被辞退") == ["违法解除劳动合同", "解除劳动合同"]


@pytest.mark.fast
def test_a_word_that_is_part_of_a_charge_is_not_read():
    crimes = Glossary.parse("医疗事故 = 医疗损害")
    assert crimes.terms("能否以医疗事故罪提起诉讼") == []
    assert crimes.terms("出现医疗事故，能否以医疗事故罪提起诉讼") == ["医疗损害"]


@pytest.mark.fast
@pytest.mark.parametrize("question, terms", [
    ("十六岁的孩子签的合同有效吗", ["已满十六周岁", "未成年人", "限制民事行为能力人"]),
    # between two ages of criminal responsibility: the band, as 刑法第十七条 writes it
    ("十五岁的孩子偷东西会坐牢吗", ["已满十五周岁", "已满十四周岁不满十六周岁", "未成年人",
                                  "限制民事行为能力人"]),
    ("十三岁", ["已满十三周岁", "已满十二周岁不满十四周岁", "未成年人", "限制民事行为能力人"]),
    ("十四岁", ["已满十四周岁", "未成年人", "限制民事行为能力人"]),  # a boundary: as it is
    ("十七岁", ["已满十七周岁", "未成年人", "限制民事行为能力人"]),  # 刑法 has no such band
    ("7岁小孩打坏了东西", ["已满七周岁", "未成年人", "无民事行为能力人"]),
    ("满18周岁了吗", ["已满十八周岁"]),
    ("第十六岁", []),  # not an age
    ("借钱给朋友三年了没还，还能要吗", list(LIMITATION_TERMS)),
    ("欠款好几年都没有还", list(LIMITATION_TERMS)),
    ("三年前买的房子", []),
    ("欠钱不还过了好几年还能要回来吗", list(LIMITATION_TERMS)),
    ("欠款一直没给，已经两年多了", list(LIMITATION_TERMS)),
    ("不还款会坐几年牢", []),  # years, but no debt owed for them
    ("法院判了对方还钱，他就是不给", list(ENFORCEMENT_TERMS)),
    ("调解书生效后对方不履行", list(ENFORCEMENT_TERMS)),
    ("我判断他不会还钱", []),
    ("判决没有写利息", []),
])
def test_ages_and_years_of_debt_are_read_as_statute_terms(question, terms):
    assert Glossary(()).terms(question) == terms


@pytest.mark.fast
def test_the_words_of_a_debt_owed_for_years_are_read_by_the_rule():
    loans = Glossary.parse("借钱|欠钱 = 借款合同 民间借贷\n起诉 = 提起诉讼")
    assert loans.terms("借钱给朋友三年了没还，还能起诉吗") == [*LIMITATION_TERMS, "提起诉讼"]
    assert loans.terms("欠钱不还过了好几年") == list(LIMITATION_TERMS)
    assert loans.terms("借钱给朋友，还能起诉吗") == ["借款合同", "民间借贷", "提起诉讼"]


@pytest.mark.fast
def test_at_most_max_terms_are_added():
    many = Glossary.parse("\n".join(f"词{i} = 术语{i}a 术语{i}b" for i in range(MAX_TERMS)))
    question = "".join(f"词{i}" for i in range(MAX_TERMS))
    assert len(many.terms(question)) == MAX_TERMS


@pytest.mark.fast
@pytest.mark.parametrize("line", ["加班 延长工作时间", "= 休息日", "加班 ="])
def test_a_bad_line_is_named(line):
    with pytest.raises(InputFileError) as e:
        Glossary.parse(f"# ok\n{line}\n", "my-glossary.txt")
    assert (e.value.path, e.value.line) == ("my-glossary.txt", 2)
    assert "query_glossary = false" in e.value.fix


@pytest.mark.fast
def test_the_shipped_glossary_loads_and_reads_everyday_words():
    g = Glossary.load()
    assert len(g.entries) > 100
    assert g.terms("周末加班，加班费怎么算？") == ["休息日", "延长工作时间"]
    assert age_terms("一百五十") == ()
    # statute words are not read as others: 投保人 is no 保人 (保证人)
    assert "保证人" not in g.terms("投保人没有如实告知，保险公司能拒赔吗？")
    assert "干涉婚姻自由" in g.terms("父母逼我嫁给不喜欢的人，合法吗？")
    assert "被告" not in g.terms("应当起诉谁？")  # STARD's 起诉谁 asks who is liable
    # the statute's own words for the cooling-off period and for finding a lost thing
    assert "撤回离婚登记申请" in g.terms("协议离婚要先冷静一个月吗？")
    assert g.terms("捡到钱包不还给失主犯法吗？")[:2] == ["拾得", "遗失物"]
    # who ends the contract: the worker who walks out, or the boss who sends them away
    assert "劳动者解除劳动合同" in g.terms("公司拖了三个月工资，我能马上走人还要补偿吗？")
    assert "劳动者解除劳动合同" in g.terms("公司不让我走人怎么办？")
    assert "用人单位解除劳动合同" in g.terms("老板让我明天走人，要给补偿吗？")
    assert "劳动者解除劳动合同" not in g.terms("老板让我明天走人，要给补偿吗？")
    # words that are something else outside work or a divorce
    for other in ("开发商交房迟到了", "买了保险还在冷静期内能退吗", "捡了个便宜"):
        assert g.terms(other) == [], other


def rank_of(hits, law, number):
    return next((h.rank for h in hits if (h.article.law, h.article.number) == (law, number)),
                None)


def test_off_is_the_search_without_it_and_on_is_the_expanded_question(small_settings):
    off = Retriever.open(replace(small_settings, query_glossary=False))
    on = Retriever.open(replace(small_settings, query_glossary=True))
    plain = "试用期最长可以约定多久？"  # nothing to add: the same either way
    assert ([h.article.id for h in on.search(plain, k=20)]
            == [h.article.id for h in off.search(plain, k=20)])
    q = "周末加班，加班费怎么算？"
    expanded = Glossary.load().expand(q)
    assert expanded != q
    assert ([h.article.id for h in on.search(q, k=20)]
            == [h.article.id for h in off.search(expanded, k=20)])


@pytest.mark.parametrize("question, law, number", [
    ("周末加班，加班费怎么算？", "劳动法", 44),
    ("十六岁的孩子自己签的买卖合同有效吗？", "民法典", 19),
    ("欠钱不还过了好几年还能要回来吗？", "民法典", 188),
    ("协议离婚要先冷静一个月吗？", "民法典", 1077),
])
def test_the_rule_behind_everyday_words_ranks_higher(small_settings, question, law, number):
    off = Retriever.open(replace(small_settings, query_glossary=False)).search(question, k=50)
    on = Retriever.open(replace(small_settings, query_glossary=True)).search(question, k=50)
    assert rank_of(on, law, number) is not None
    assert rank_of(off, law, number) is None or rank_of(on, law, number) < rank_of(off, law,
                                                                                    number)


def test_the_retrieve_cli_says_which_terms_it_searched_with(small_settings, capsys):
    from legalrag import cli

    def err_of(question):
        code = cli.main(["--corpus", str(small_settings.corpus_dir), "--index-dir",
                         str(small_settings.index_dir), "retrieve", question, "-k", "3"])
        assert code == 0
        return capsys.readouterr().err

    assert "休息日 延长工作时间" in err_of("周末加班，加班费怎么算？")
    assert "statute terms" not in err_of("试用期最长可以约定多久？")
    assert "statute terms" not in err_of("劳动法第四十四条和周末加班")  # named: no glossary


@pytest.mark.parametrize("on", [False, True])
def test_an_eval_report_says_whether_the_glossary_was_on(small_settings, on):
    from legalrag.retrieval.evaluate import EvalQuery, render_markdown, run_eval

    r = Retriever.open(replace(small_settings, query_glossary=on))
    report = run_eval(r, [EvalQuery("q1", "周末加班，加班费怎么算？", ("《劳动法》第四十四条",))],
                      modes=["bm25"])
    assert report.to_dict()["query_glossary"] is on
    assert f"glossary {'on' if on else 'off'}" in render_markdown(report).splitlines()[0]


def test_the_quoted_paragraph_is_chosen_by_the_question_as_the_search_read_it(small_settings):
    from legalrag.answer.assistant import quoted_passages
    from legalrag.answer.provision import PassageScorer
    from legalrag.index.embed import load_embedder

    retriever = Retriever.open(small_settings)
    scorer = PassageScorer(load_embedder(small_settings).encode)

    def first_quote(question, glossary):
        hits = retriever.search(question, k=5)
        _, quoted = quoted_passages(scorer, question, hits, glossary=glossary)
        return quoted[0].article.law, quoted[0].article.number

    # 休息日 is the word of 劳动法第四十四条（二）; 周末 is not
    q = "周末加班，加班费怎么算？"
    assert first_quote(q, retriever.glossary) == ("劳动法", 44)
    assert first_quote(q, None) != ("劳动法", 44)
    named = "劳动法第四十一条和周末加班"  # a named article is quoted as it stands
    assert first_quote(named, retriever.glossary) == first_quote(named, None) == ("劳动法", 41)
