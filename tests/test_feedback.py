"""Feedback stored with the conversation (web/history.py) and exported as an eval query
file (`legalrag feedback export`) that `legalrag eval` reads: a real answer from the
SmolLM2 GGUF over the small real index, a real SQLite file, the real query-file loader."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from legalrag.cli import main
from legalrag.retrieval.evaluate import load_queries
from legalrag.web.chat import ChatService
from legalrag.web.history import Feedback, History, eval_records, give_feedback
from legalrag.web.session import ChatSession

ANNA = "user:anna"


@pytest.fixture(scope="module")
def answered(small_settings, tmp_path_factory):
    """A conversation of two answered questions, saved under data_dir."""
    from legalrag.answer.llm import LlamaCppModel
    from legalrag.answer.modelfile import smollm2_path

    data = tmp_path_factory.mktemp("data")
    settings = replace(small_settings, data_dir=data, llm_max_tokens=16,
                       answer_source_tokens=250, llm_threads=1)
    chat = ChatService(settings, model=LlamaCppModel(smollm2_path(), n_ctx=4096, threads=1))
    history = History.for_settings(settings)
    session = ChatSession()
    for q in ("劳动合同法第十九条规定的试用期最长多久？", "那如果是试用期呢？"):
        list(history.record(ANNA, session, chat.respond(session, q)))
    return settings, history, session


def test_feedback_is_kept_with_the_answer(answered):
    _, history, session = answered
    give_feedback(history, ANNA, session.id, 1, rating=1)
    give_feedback(history, ANNA, session.id, 1, comment=" 回答正确 ", right=[1, 1],
                  irrelevant=[1, 3])
    assert history.feedback(ANNA, session.id) == {
        1: Feedback(1, "回答正确", right=(1,), irrelevant=(3,))}
    give_feedback(history, ANNA, session.id, 1, rating=0)  # 👍 taken back, the rest stays
    assert history.feedback(ANNA, session.id)[1] == Feedback(0, "回答正确", (1,), (3,))
    for bad in (dict(rating=5), dict(comment="长" * 3000)):
        with pytest.raises(ValueError):
            give_feedback(history, ANNA, session.id, 1, **bad)
    with pytest.raises(ValueError, match="没有这个回答"):
        give_feedback(history, "user:bob", session.id, 1, rating=-1)  # not bob's
    with pytest.raises(ValueError, match="没有这个回答"):
        give_feedback(history, ANNA, session.id, 9, rating=-1)
    assert history.feedback("user:bob", session.id) == {}


def test_feedback_export_writes_what_eval_reads(answered, tmp_path, monkeypatch, capsys):
    settings, history, session = answered
    give_feedback(history, ANNA, session.id, 1, right=[1], irrelevant=[2])
    give_feedback(history, ANNA, session.id, 2, rating=-1, right=[2], comment="第二条更相关")
    hits = {ex.n: ex.hits for ex in session.exchanges}

    monkeypatch.setenv("LEGALRAG_DATA_DIR", str(settings.data_dir))
    monkeypatch.chdir(tmp_path)
    assert main(["feedback", "export", "--out", "marked.jsonl"]) == 0
    assert "2 marked question(s) written to marked.jsonl" in capsys.readouterr().err
    queries = load_queries(tmp_path / "marked.jsonl")  # what `legalrag eval` reads
    by_id = {q.id: q for q in queries}
    first = by_id[f"feedback-{session.id}-1"]
    a = hits[1][0].article
    assert first.query == "劳动合同法第十九条规定的试用期最长多久？"
    assert list(first.relevant) == [f"《{a.law_title}》{a.label}"]
    second = json.loads((tmp_path / "marked.jsonl").read_text(encoding="utf-8").splitlines()[1])
    assert second["query"] == session.exchanges[1].rewritten  # the standalone query
    assert (second["rating"], second["comment"]) == (-1, "第二条更相关")
    assert second["relevant"] == [f"《{hits[2][1].article.law_title}》{hits[2][1].article.label}"]

    history.delete(ANNA, session.id)  # feedback goes with its conversation
    assert eval_records(history) == []


@pytest.mark.fast
def test_feedback_export_without_a_history_says_where_it_looked(tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.setenv("LEGALRAG_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.chdir(tmp_path)
    assert main(["feedback", "export", "--out", "x.jsonl"]) == 2
    err = capsys.readouterr().err
    assert "no conversations are stored yet" in err and "data_dir" in err
    assert not (tmp_path / "x.jsonl").exists()
