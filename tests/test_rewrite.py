"""Follow-up questions rewritten into standalone retrieval queries (exact outputs)."""

import pytest

from legalrag.retrieval.rewrite import Turn, is_followup, rewrite_query

pytestmark = pytest.mark.fast  # pure functions: the fast tier (scripts/test.sh --fast)

FIRST = Turn("公司辞退员工要给经济补偿吗？")


@pytest.mark.parametrize("question, expected", [
    ("那如果是试用期呢？", "公司辞退员工要给经济补偿吗；如果是试用期"),
    ("那么，孕期呢", "公司辞退员工要给经济补偿吗；孕期"),
    ("赔偿多少？", "公司辞退员工要给经济补偿吗；赔偿多少"),
    ("这种情况要提前通知吗？", "公司辞退员工要给经济补偿吗；这种情况要提前通知吗"),
    ("要是对方不同意怎么办", "公司辞退员工要给经济补偿吗；要是对方不同意怎么办"),
    # standalone: no history marker, or an article cited by name
    ("房东不退押金怎么办？", "房东不退押金怎么办？"),
    ("那劳动合同法第四十七条怎么规定？", "那劳动合同法第四十七条怎么规定？"),
    ("  醉酒驾驶机动车会受到什么处罚？ ", "醉酒驾驶机动车会受到什么处罚？"),
])
def test_rewrite_after_one_turn(question, expected):
    assert rewrite_query(question, [FIRST]) == expected


# (earlier question, new question, whether the new one is a follow-up); the first two are
# the pairs that went wrong in the browser (issue 12).
PAIRS = [
    ("怎么做红烧肉才好吃？",
     "我在一家公司工作了五年，公司拖欠了我三个月工资，我想辞职，可以要求经济补偿吗？", False),
    ("公司拖欠工资三个月，我可以辞职并要求经济补偿吗？", "那如果我还在试用期呢？", True),
    ("公司拖欠工资三个月，我可以辞职并要求经济补偿吗？", "这种情况需要提前三十天通知吗？", True),
    ("房东不退押金怎么办？", "如果他一直不接电话呢", True),
    ("房东不退押金怎么办？", "他打了我，我可以报警吗？", False),
    ("交通事故对方全责，我能要求哪些赔偿？",
     "如果公司在试用期内无故把我辞退了，公司需要给我赔偿吗？", False),
    ("离婚时房子怎么分？", "孩子的抚养权呢？", True),
    ("离婚时房子怎么分？", "醉酒驾驶机动车会被判刑吗？", False),
]


@pytest.mark.parametrize("before, question, followup", PAIRS)
def test_only_elliptical_questions_are_follow_ups(before, question, followup):
    assert is_followup(question, [Turn(before)]) is followup
    expected = f"{before.rstrip('？?')}；" if followup else ""
    assert rewrite_query(question, [Turn(before)]).startswith(expected)
    if not followup:
        assert rewrite_query(question, [Turn(before)]) == question


def test_without_history_nothing_is_rewritten():
    assert not is_followup("那如果是试用期呢？", [])
    assert rewrite_query("那如果是试用期呢？", []) == "那如果是试用期呢？"


def test_a_chain_keeps_the_anchor_and_the_last_follow_up():
    second = Turn("那如果是试用期呢？", "公司辞退员工要给经济补偿吗；如果是试用期")
    third_query = rewrite_query("那要赔多少钱？", [FIRST, second])
    assert third_query == "公司辞退员工要给经济补偿吗；如果是试用期；要赔多少钱"
    third = Turn("那要赔多少钱？", third_query)
    assert rewrite_query("如果是孕期呢", [FIRST, second, third]) == (
        "公司辞退员工要给经济补偿吗；要赔多少钱；如果是孕期")
    # A new standalone question starts a new chain.
    assert rewrite_query("那么，孕期呢", [FIRST, second, third, Turn("房东不退押金怎么办？")]) == (
        "房东不退押金怎么办；孕期")
