"""The parser on real corpus files and on broken ones."""

from pathlib import Path

import pytest
from conftest import CORPUS, copy_corpus

from legalrag.errors import CorpusError
from legalrag.index.corpus import metadata_key, parse_corpus, parse_file, short_title

pytestmark = pytest.mark.fast  # pure functions: the fast tier (scripts/test.sh --fast)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return parse_corpus(copy_corpus(tmp_path_factory.mktemp("real")))


def by(report, law, number, suffix=0, version=None):
    return [a for a in report.articles if a.law == law and a.number == number
            and a.suffix == suffix and (version is None or a.version == version)]


def test_civil_code_is_one_law_numbered_continuously_across_files():
    report = parse_corpus(copy_corpus(Path(__import__("tempfile").mkdtemp()),
                                      [f"民法典/{p.name}" for p in (CORPUS / "民法典").iterdir()]
                                      + ["laws.sqlite3"]))
    civil = [a for a in report.articles if a.law == "民法典"]
    assert sorted(a.number for a in civil) == list(range(1, 1261))
    assert {a.law_title for a in civil} == {"中华人民共和国民法典"}
    (a1079,) = by(report, "民法典", 1079)
    assert a1079.path[0] == "婚姻家庭编"
    assert a1079.path[-1].startswith("第四章")
    assert a1079.text.startswith("夫妻一方要求离婚的")
    assert report.skipped == []


def test_inserted_articles_carry_number_and_suffix(real):
    (a,) = by(real, "刑法", 133, 1)
    assert a.label == "第一百三十三条之一"
    assert a.id != by(real, "刑法", 133, 0)[0].id
    assert a.path == ("第二编 分则", "第二章 危害公共安全罪")


def test_multi_paragraph_article_keeps_every_paragraph(real):
    (a,) = by(real, "劳动合同法", 47)
    paragraphs = a.text.split("\n")
    assert len(paragraphs) == 3
    assert paragraphs[2].startswith("本条所称月工资")
    (items,) = by(real, "劳动法", 91)  # an article with numbered items (项)
    assert "（四）解除劳动合同后" in items.text


def test_versions_only_the_newest_is_in_force(real):
    old = by(real, "公司法", 1, version="2018-10-26")
    new = by(real, "公司法", 1, version="2023-12-29")
    assert old and new
    assert not old[0].in_force and new[0].in_force
    assert old[0].id != new[0].id


def test_expired_law_is_not_in_force(real):
    law = "最高人民法院关于审理劳动争议案件适用法律若干问题的解释"
    arts = [a for a in real.articles if a.law == law]
    assert arts and not any(a.in_force for a in arts)
    assert arts[0].level == "司法解释"


def test_a_repealed_interpretation_is_found_under_its_short_title(tmp_path):
    # laws.sqlite3 names it 最高人民法院关于适用《担保法》若干问题的解释 (expired since the
    # 民法典); the file's title writes 《中华人民共和国担保法》. Unjoined, its 134 articles
    # were in force and quoted as an answer's basis.
    old = "最高人民法院关于适用《中华人民共和国担保法》若干问题的解释"
    new = "最高人民法院关于适用《中华人民共和国民法典》有关担保制度的解释"
    report = parse_corpus(copy_corpus(tmp_path, [
        "司法解释/最高人民法院关于适用《担保法》若干问题的解释(2000-12-08).md",
        "司法解释/最高人民法院关于适用《民法典》有关担保制度的解释(2020-12-31).md",
        "laws.sqlite3"]))
    repealed = [a for a in report.articles if a.law == old]
    current = [a for a in report.articles if a.law == new]
    assert len(repealed) == 134 and not any(a.in_force for a in repealed)
    assert current and all(a.in_force for a in current)
    assert metadata_key(old) == "最高人民法院关于适用《担保法》若干问题的解释"


def test_metadata_fills_level_and_version(real):
    (a,) = by(real, "个体工商户条例", 2)
    assert a.level == "行政法规" and a.version == "2016-02-06"
    assert a.law_title == "个体工商户条例"


def test_ids_are_stable_across_parses(tmp_path):
    one = parse_corpus(copy_corpus(tmp_path / "a", ["社会法/劳动法(2018-12-29).md"]))
    two = parse_corpus(copy_corpus(tmp_path / "b", ["社会法/劳动法(2018-12-29).md"]))
    assert [a.id for a in one.articles] == [a.id for a in two.articles]
    assert len({a.id for a in one.articles}) == len(one.articles)


def test_counts(real):
    assert real.laws == 7  # 劳动法 劳动合同法 民法典 刑法 公司法 个体工商户条例 + one 司法解释
    assert real.in_force < len(real.articles)
    assert "articles in force" in real.summary()


# -- user files and broken files ---------------------------------------------------------

def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_plain_user_format(tmp_path):
    f = write(tmp_path / "我的规定.txt",
              "某市文明养犬条例\n\n第一条 为了规范养犬行为，制定本条例。\n"
              "第二条　养犬人应当束犬链。\n"
              "携带犬只出户的，应当由成年人牵领。\n第三条：违反本条例的，予以警告。\n")
    pf = parse_file(f, "我的规定.txt", "用户上传")
    assert pf.law == "某市文明养犬条例"
    assert [a.number for a in pf.articles] == [1, 2, 3]
    assert pf.articles[1].text == "养犬人应当束犬链。\n携带犬只出户的，应当由成年人牵领。"
    assert pf.articles[2].text == "违反本条例的，予以警告。"


def test_plain_user_format_with_chapter_lines(tmp_path):
    """An uploaded plain file writes its chapters as lines of their own: they head the
    articles, where they used to end the article before them as text."""
    f = write(tmp_path / "规定.txt",
              "某市文明养犬条例\n第一章 总则\n第一条 为了规范养犬行为，制定本条例。\n"
              "第二章 养犬管理\n第二条 养犬人应当束犬链。\n"
              "第三章　法律责任\n第三条 违反的，予以警告。\n")
    pf = parse_file(f, "规定.txt", "用户上传")
    assert [(a.path, a.text) for a in pf.articles] == [
        (("第一章 总则",), "为了规范养犬行为，制定本条例。"),
        (("第二章 养犬管理",), "养犬人应当束犬链。"),
        (("第三章 法律责任",), "违反的，予以警告。")]


def test_reference_at_line_start_stays_in_its_article(tmp_path):
    f = write(tmp_path / "a.md", "# 测试法\n第一条 总则。\n第五条规定的情形除外。\n第二条 其他。\n")
    pf = parse_file(f, "a.md", "")
    assert [a.number for a in pf.articles] == [1, 2]
    assert "第五条规定的情形除外" in pf.articles[0].text


def test_a_title_without_its_hash_heads_the_articles_after_it(tmp_path):
    """未成年人网络保护条例 writes its chapter titles as plain lines after a zero-width
    space: they head the next articles instead of ending the article before them."""
    f = write(tmp_path / "a.md",
              "# 测试条例\n<!-- INFO END -->\n## 第一章 总 则\n第一条 甲。\n\n\u200b\n\n"
              "网络素养促进\n\n第二条 乙。\n\n第三条 丙。\n附 则\n第四条 丁。\n")
    pf = parse_file(f, "a.md", "")
    assert [(a.number, a.path, a.text) for a in pf.articles] == [
        (1, ("第一章 总 则",), "甲。"), (2, ("网络素养促进",), "乙。"),
        (3, ("网络素养促进",), "丙。"), (4, ("附 则",), "丁。")]


def test_a_heading_wrapped_onto_a_second_line_is_one_heading(tmp_path):
    f = write(tmp_path / "a.md",
              "# 测试法\n<!-- INFO END -->\n## 第五编 特别程序\n### 第四章 被告人逃匿、死亡案件\n"
              "违法所得的没收程序\n第一条 甲。\n附则\n第二条 乙。\n")
    pf = parse_file(f, "a.md", "")
    assert pf.articles[0].path == ("第五编 特别程序",
                                   "第四章 被告人逃匿、死亡案件违法所得的没收程序")
    assert pf.articles[1].path == ("附则",)  # closes the whole law, not the 编


def test_short_lines_inside_an_article_stay_in_it(tmp_path):
    """A formula, a line without a finished sentence before it, or a line not followed
    by an article is text, not a heading."""
    f = write(tmp_path / "a.md",
              "# 测试条例\n<!-- INFO END -->\n第一条 计算公式为：\n应纳税额＝销售额×税率\n"
              "第二条 下列人员\n不得担任董事\n第三条 其他。\n附则\n")
    pf = parse_file(f, "a.md", "")
    assert [a.text for a in pf.articles] == [
        "计算公式为：\n应纳税额＝销售额×税率", "下列人员\n不得担任董事", "其他。\n附则"]
    assert all(a.path == () for a in pf.articles)


@pytest.mark.parametrize(
    "content, line, reason",
    [
        ("# 测试法\n第一条 甲。\n第二条 乙。\n第一条 丙。\n".encode(), 4, "occurs twice"),
        ("# 测试法\n## 第一章 总则\n### 第一节\n".encode(), 0, "no articles"),
        ("第一条 没有标题。\n".encode(), 1, "no title"),
        (b"", 1, "no title"),
        ("# 劳动法\n第一条 为了保护劳动者。\n".encode("gbk"), 1, "not UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", 0, "binary"),
    ],
)
def test_broken_files_are_reported_with_file_line_and_reason(tmp_path, content, line, reason):
    f = write(tmp_path / "坏文件.md", content)
    with pytest.raises(CorpusError) as err:
        parse_file(f, "坏文件.md", "")
    assert err.value.path == "坏文件.md"
    assert err.value.line == line
    assert reason in err.value.reason


def test_a_broken_file_is_skipped_and_the_rest_parsed(tmp_path):
    root = copy_corpus(tmp_path / "c", ["社会法/劳动法(2018-12-29).md"])
    write(root / "用户上传" / "乱码.md", "# 某法\n第一条 内容\n".encode("gbk"))
    write(root / "用户上传" / "空.md", "")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    report = parse_corpus(root)
    assert {e.path for e in report.skipped} == {"用户上传/乱码.md", "用户上传/空.md"}
    assert report.laws == 1 and len(report.articles) == 107
    assert before == {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_out_of_order_articles_warn_but_index(tmp_path):
    root = tmp_path / "c"
    write(root / "乱序.md", "# 乱序条例\n第二条 乙。\n第一条 甲。\n")
    report = parse_corpus(root)
    assert len(report.articles) == 2
    assert [w.line for w in report.warnings] == [3]


def test_duplicate_law_file_is_skipped(tmp_path):
    root = copy_corpus(tmp_path / "c", ["社会法/劳动法(2018-12-29).md"])
    write(root / "用户上传" / "劳动法(2018-12-29).md",
          (CORPUS / "社会法/劳动法(2018-12-29).md").read_bytes())
    report = parse_corpus(root)
    assert len(report.skipped) == 1 and "duplicate law" in report.skipped[0].reason
    assert report.skipped[0].path == "用户上传/劳动法(2018-12-29).md"  # the official text stays
    assert len(report.articles) == 107
    assert {a.source for a in report.articles} == {"社会法/劳动法(2018-12-29).md"}


def test_short_title():
    assert short_title("中华人民共和国劳动合同法") == "劳动合同法"
    assert short_title("《个体工商户条例》") == "个体工商户条例"


def test_every_part_of_the_civil_code_is_one_version_in_force(real):
    civil = [a for a in real.articles if a.law == "民法典"]
    assert {a.version for a in civil} == {"2021-01-01"}
    assert all(a.in_force for a in civil)
    (a,) = by(real, "民法典", 1079)
    assert a.in_force
