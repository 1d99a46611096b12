"""`legalrag check` end to end: a file with good and bad citations, labelled against a real
small index (the conftest corpus), with exact labels, texts and exit codes."""

from __future__ import annotations

import json

from legalrag import cli

DOCUMENT = """劳动合同书（节选）
第八条 乙方月工资高于上年度职工月平均工资三倍的，依照《中华人民共和国劳动合同法》第四十七条第二款。
第九条 工作时间依照《劳动法》第 36 条执行。
第十条 违约责任适用《合同法》第一百零七条；另见《民法典》第五千条、《日本劳动法》第三十六条。
第十一条 本合同依据《劳动合同法》第十十条订立。
"""


def run(settings, argv, capsys):
    code = cli.main(["--corpus", str(settings.corpus_dir), "--index-dir",
                     str(settings.index_dir), "check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_labels_a_file_with_good_and_bad_citations(small_settings, tmp_path, capsys):
    doc = tmp_path / "contract.txt"
    doc.write_text(DOCUMENT, encoding="utf-8")
    code, out, err = run(small_settings, [str(doc), "--json"], capsys)
    assert code == 1 and err == ""
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["raw"], r["law"], r["number"], r["suffix"], r["paragraph"], r["label"], r["line"])
            for r in rows] == [
        ("《中华人民共和国劳动合同法》第四十七条第二款", "劳动合同法", 47, 0, 2, "in_force", 2),
        ("《劳动法》第 36 条", "劳动法", 36, 0, None, "in_force", 3),
        ("《合同法》第一百零七条", "合同法", 107, 0, None, "repealed", 4),
        ("《民法典》第五千条", "民法典", 5000, 0, None, "invented", 4),
        ("《日本劳动法》第三十六条", "日本劳动法", 36, 0, None, "invented", 4),
        ("《劳动合同法》第十十条", "劳动合同法", 0, 0, None, "invalid", 5),
    ]
    assert rows[0]["text"].startswith("劳动者月工资高于用人单位所在直辖市、设区的市级人民政府"
                                      "公布的本地区上年度职工月平均工资三倍的")
    assert rows[1]["text"].startswith("国家实行劳动者每日工作时间不超过八小时")
    assert rows[2]["note"] == "《合同法》已被《民法典》废止（见《民法典》第一千二百六十条）"
    assert rows[3]["note"] == "《民法典》没有第五千条"
    assert rows[4]["note"] == "法库中没有《日本劳动法》"

    code, out, _ = run(small_settings, [str(doc)], capsys)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == ("✓ 第2行 《中华人民共和国劳动合同法》第四十七条第二款  现行有效："
                        "现行有效（2012-12-28版）")
    assert lines[1].startswith("    劳动者月工资高于")  # the 款 cited, not the whole article
    assert "    经济补偿按劳动者在本单位工作的年限" not in out
    assert "✗ 第4行 《合同法》第一百零七条  已失效：《合同法》已被《民法典》废止" in out
    assert lines[-1] == "共 6 处引用：现行有效 2，已失效 1，法库中无此条文 2，引用无效 1"


def test_check_exits_0_when_every_citation_is_in_force(small_settings, tmp_path, capsys,
                                                       monkeypatch):
    doc = tmp_path / "ok.md"
    doc.write_text("依照《劳动合同法》第四十七条和《刑法》第一百三十三条之一。", encoding="utf-8")
    code, out, _ = run(small_settings, [str(doc)], capsys)
    assert code == 0
    assert out.splitlines()[-1] == "共 2 处引用：现行有效 2"
    # what ✓现行有效 does not say, said once, above the count
    assert out.splitlines()[-2].startswith("✓现行有效 只说明所引条文存在且现行有效")


def test_check_reads_stdin(small_settings, capsys, monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
        "《劳动合同法》第四十七条".encode())))
    code, out, _ = run(small_settings, ["-", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["label"] == "in_force"


def test_unusable_input_is_one_line_and_exit_2(small_settings, tmp_path, capsys):
    code, out, err = run(small_settings, [str(tmp_path / "missing.txt")], capsys)
    assert (code, out) == (2, "")
    assert err == (f"legalrag: error: {tmp_path / 'missing.txt'}: no such file "
                   "(fix: give the path of a text file, or - to read stdin)\n")
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("依照《劳动合同法》第四十七条".encode("gbk"))
    code, out, err = run(small_settings, [str(gbk)], capsys)
    assert (code, out) == (2, "")
    assert "not UTF-8" in err and "iconv -f GBK -t UTF-8" in err
    code, _, err = run(small_settings, [str(tmp_path)], capsys)
    assert code == 2 and "is a folder" in err


def test_the_check_tab_action_over_the_live_index(small_settings):
    """The 核查引用 tab's action without the browser: same labels, its own limits."""
    from legalrag.retrieval.live import LiveRetriever
    from legalrag.web.citecheck import MAX_CHECK_CHARS, CitationCheck

    check = CitationCheck(LiveRetriever(small_settings))
    html = check.run("依照《劳动合同法》第四十七条；《合同法》第五十二条")
    assert html.startswith('<div class="lr-check-summary">共 2 处引用：现行有效 1，已失效 1。')
    assert 'class="lr-badge lr-repealed">✗已失效</span>' in html
    assert "超过上限 200,000 字" in check.run("字" * (MAX_CHECK_CHARS + 1))
    assert "请粘贴文字" in check.run(None)
