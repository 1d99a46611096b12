import pytest

from legalrag.numerals import article_label, parse_numeral, to_chinese

pytestmark = pytest.mark.fast  # pure functions: the fast tier (scripts/test.sh --fast)


@pytest.mark.parametrize(
    "text, value",
    [
        ("一", 1), ("十", 10), ("一十", 10), ("十一", 11), ("二十", 20), ("一百", 100),
        ("一百零三", 103), ("一百一十", 110), ("一百一十九", 119), ("二百一十九", 219),
        ("一千", 1000), ("一千零三", 1003), ("一千零三十二", 1032), ("一千零七十九", 1079),
        ("一千二百六十", 1260), ("两百", 200), ("一万零一十", 10010),
        ("47", 47), ("1079", 1079), ("４７", 47),
    ],
)
def test_parse_numeral(text, value):
    assert parse_numeral(text) == value


@pytest.mark.parametrize("bad", ["", "百", "十十", "一二", "零", "abc", "一百百", "三千五千", "4x",
                                 # read as 201, 3002, 1005, 10, 10000 by a lenient parser
                                 "二百一", "三千二", "一千零零五", "十零", "万", "一百十",
                                 "两十", "零五"])
def test_malformed_numerals_are_rejected_not_guessed(bad):
    with pytest.raises(ValueError):
        parse_numeral(bad)


def test_traps_stay_distinct():
    assert parse_numeral("一百零三") != parse_numeral("一千零三十二")
    assert parse_numeral("十") == parse_numeral("一十") == 10


def test_round_trip_over_every_article_number():
    for n in range(1, 20001):
        assert parse_numeral(to_chinese(n)) == n


@pytest.mark.parametrize(
    "n, text",
    [(10, "十"), (15, "十五"), (110, "一百一十"), (1079, "一千零七十九"), (1003, "一千零三")],
)
def test_to_chinese_writes_what_statutes_write(n, text):
    assert to_chinese(n) == text


def test_article_label():
    assert article_label(219, 1) == "第二百一十九条之一"
    assert article_label(47) == "第四十七条"


@pytest.mark.parametrize("text, value", [(" 47 ", 47), ("\u3000四十七 ", 47), ("０４７", 47)])
def test_whitespace_around_a_numeral_is_ignored(text, value):
    # 第 47 条 and 第　四十七　条 are written citations of article 47 (issue 11).
    assert parse_numeral(text) == value


@pytest.mark.parametrize("bad", ["二百一", "十十", "4 7", "四 十七"])
def test_whitespace_or_malformed_inside_a_numeral_is_rejected(bad):
    with pytest.raises(ValueError):
        parse_numeral(bad)
