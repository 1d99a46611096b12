"""Answer measures over hand-built answers (exact expected values), and the report files."""

from __future__ import annotations

import csv
import json

import pytest

from legalrag.answer.assistant import LOOP_NOTE, Answer, Timings
from legalrag.answer.check import CheckedCitation
from legalrag.answer.evaluate import (
    AnswerReport,
    measure_answer,
    render_answer_markdown,
    write_answer_report,
)
from legalrag.answer.prompt import Source
from legalrag.records import Article
from legalrag.retrieval.evaluate import EvalQuery, Gold
from legalrag.vocab import INVENTED, VERIFIED

pytestmark = pytest.mark.fast


def art(law: str, number: int) -> Article:
    return Article(f"中华人民共和国{law}", law, "法律", "社会法", (), number, 0, f"第{number}条",
                   "……", "2018-12-29", True, f"{law}.md", 1)


A38, A46, A47 = art("劳动合同法", 38), art("劳动合同法", 46), art("劳动合同法", 47)
Q = EvalQuery("q1", "公司拖欠工资，我辞职能要补偿吗？", ("《劳动合同法》第四十六条",))
GOLD = (Gold("《劳动合同法》第四十六条", "劳动合同法", 46, 0),)


def answer(citations, sources=(A38, A46), raw="", notes=(), abstained=False,
           provisions=()) -> Answer:
    srcs = tuple(Source(i, a, a.text, False) for i, a in enumerate(sources, 1))
    return Answer("q", "q", (), srcs, raw, raw, tuple(citations), abstained,
                  Timings(10.0, 500.0, 900.0), "m", tuple(notes), tuple(provisions))


def cite(kind, label, law="", number=0, source=None) -> CheckedCitation:
    return CheckedCitation(kind, "x", 0, 1, label, law=law, number=number, source=source)


def test_gold_cited_by_a_verified_marker_counts():
    r = measure_answer(Q, GOLD, answer([cite("marker", VERIFIED, "劳动合同法", 2, 2)]),
                       5.0, 400.0, 900.0)
    assert r.gold_in_sources and r.gold_cited_verified and r.cited_articles == 1
    assert r.labels == {VERIFIED: 1} and not r.loop and not r.template_leak


def test_gold_cited_but_not_verified_does_not_count():
    cits = [cite("article", INVENTED, "劳动合同法", 46),
            cite("article", VERIFIED, "劳动合同法", 38)]
    r = measure_answer(Q, GOLD, answer(cits), 5.0, 400.0, 900.0)
    assert r.gold_in_sources and not r.gold_cited_verified
    assert r.cited_articles == 2 and r.labels == {INVENTED: 1, VERIFIED: 1}


def test_gold_missing_from_sources_loops_and_leaks():
    raw = "根据《法律名称》第X条……"
    r = measure_answer(Q, GOLD, answer([], sources=(A38, A47), raw=raw, notes=(LOOP_NOTE,)),
                       5.0, 400.0, 900.0)
    assert not r.gold_in_sources and r.loop and r.template_leak and r.cited_articles == 0


def test_summary_and_files(tmp_path):
    rs = (
        measure_answer(Q, GOLD, answer([cite("marker", VERIFIED, "劳动合同法", 2, 2)]),
                       5.0, 400.0, 1000.0),
        measure_answer(Q, GOLD, answer([], sources=(A38,)), 7.0, 600.0, 3000.0),
        measure_answer(Q, GOLD, answer([], sources=(A38,), abstained=True), 9.0, None, 9.0),
    )
    report = AnswerReport(rs, "m", "q.jsonl")
    s = report.summary()
    assert s["questions"] == 3 and s["abstained"] == pytest.approx(1 / 3)
    assert s["gold_in_sources"] == pytest.approx(1 / 3)
    assert s["gold_cited_verified"] == pytest.approx(1 / 3)
    assert s["no_verified_citation"] == pytest.approx(1 / 3)  # the second answer
    assert s["first_token_ms_median"] == 500.0 and s["total_ms_median"] == 2000.0
    assert s["cited_articles_mean"] == 0.5 and s["labels"][VERIFIED] == 1
    assert "| gold article cited with ✓ by the model | 33.3% |" in render_answer_markdown(report)
    paths = write_answer_report(report, tmp_path)
    assert [p.name for p in paths] == ["answers.json", "answers.md", "per_question.csv"]
    data = json.loads(paths[0].read_text(encoding="utf-8"))
    assert len(data["questions"]) == 3 and data["questions"][0]["answer"]["model"] == "m"
    rows = list(csv.DictReader(paths[2].open(encoding="utf-8")))
    assert [r["gold_cited_verified"] for r in rows] == ["True", "False", "False"]


def test_a_gold_provision_counts_as_quoted_not_as_cited_by_the_model():
    from legalrag.answer.provision import Passage

    quoted = Passage(A46, 1, None, "", A46.text)
    r = measure_answer(Q, GOLD, answer([], provisions=[quoted]), 5.0, 400.0, 900.0, 20.0)
    assert r.gold_quoted and not r.gold_cited_verified and r.gold_cited_or_quoted
    assert r.provision_ms == 20.0 and r.shown_articles == 1
    wrong = Passage(A38, 1, None, "", "…")
    other = measure_answer(Q, GOLD, answer([], provisions=[wrong]), 5.0, 400.0, 900.0, 30.0)
    assert not other.gold_quoted and not other.gold_cited_or_quoted
    # a second quote counts when it is the gold one, and as one more article shown
    both = measure_answer(Q, GOLD, answer([], provisions=[wrong, quoted]), 5.0, 400.0, 900.0,
                          30.0)
    assert both.gold_quoted and both.shown_articles == 2
    s = AnswerReport((r, other), "m").summary()
    assert s["gold_quoted"] == 0.5 and s["gold_cited_verified"] == 0.0
    assert s["provision_ms_median"] == 25.0 and s["provision_ms_max"] == 30.0
    assert "| gold article quoted as the provision | 50.0% |" in render_answer_markdown(
        AnswerReport((r, other), "m"))


def test_sentences_that_cite_nothing_and_shown_provisos_are_counted(tmp_path):
    from dataclasses import replace

    raw = "根据《劳动合同法》第三十八条，劳动者可以解除劳动合同。因此，公司必须支付双倍工资。"
    tick = replace(cite("article", VERIFIED, "劳动合同法", 38, 1), start=2, end=15,
                   proviso="但是，……除外")
    r = measure_answer(Q, GOLD, answer([tick], raw=raw), 5.0, 400.0, 900.0)
    assert (r.uncited, r.provisos) == (1, 1)
    plain = measure_answer(Q, GOLD, answer([replace(tick, proviso="")],
                                           raw=raw[:raw.index("因此")]), 5.0, 400.0, 900.0)
    assert (plain.uncited, plain.provisos) == (0, 0)
    report = AnswerReport((r, plain), "m", "q.jsonl")
    s = report.summary()
    assert (s["with_uncited"], s["uncited_sentences"], s["provisos"]) == (0.5, 1, 1)
    md = render_answer_markdown(report)
    assert "| answers with sentences marked 未引条文 (sentences) | 50.0% (1) |" in md
    rows = list(csv.DictReader(write_answer_report(report, tmp_path)[2].open(encoding="utf-8")))
    assert [(row["uncited"], row["provisos"]) for row in rows] == [("1", "1"), ("0", "0")]
