"""The query-encoder tune stage on a small real corpus with real STARD questions."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, copy_corpus, make_settings

from legalrag import cli
from legalrag.index import tune
from legalrag.index.build import build_index
from legalrag.index.tune import gold_counts, make_examples, outdated, read_prior, split_of
from legalrag.retrieval.abstain import measure
from legalrag.retrieval.retriever import Retriever

FILES = ["社会法/劳动合同法(2012-12-28).md", "社会法/劳动法(2018-12-29).md", "laws.sqlite3"]


@pytest.fixture(scope="module")
def questions(tmp_path_factory):
    """Real STARD questions whose gold articles are all in the small corpus."""
    rows = [json.loads(x) for x in (ROOT / "data/eval/stard_train.jsonl").read_text().splitlines()]
    keep = [r for r in rows if all("劳动合同法》" in g or "劳动法》" in g for g in r["relevant"])]
    path = tmp_path_factory.mktemp("q") / "questions.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in keep), encoding="utf-8")
    return path


@pytest.mark.fast
def test_split_is_fixed_by_id():
    assert split_of("stard-0") == split_of("stard-0")
    shares = [split_of(f"q{i}") for i in range(2000)]
    assert 0.15 < shares.count("dev") / len(shares) < 0.25


def test_dev_questions_never_reach_training(questions, tmp_path):
    from legalrag.index.corpus import parse_corpus

    report = parse_corpus(copy_corpus(tmp_path / "c", FILES))
    rows = [json.loads(x) for x in questions.read_text().splitlines()]
    tune, _ = make_examples(rows, report.articles, "tune")
    dev, _ = make_examples(rows, report.articles, "dev")
    tune_q = {e.query for e in tune}
    assert tune and dev
    assert not tune_q & {e.query for e in dev}
    assert all(split_of(r["id"]) == "tune" for r in rows if r["query"] in tune_q)


def test_article_prior_counts_tune_questions_only(questions, tmp_path):
    from legalrag.index.corpus import parse_corpus

    articles = parse_corpus(copy_corpus(tmp_path / "c", FILES)).articles
    rows = [json.loads(x) for x in questions.read_text().splitlines()]
    counts = gold_counts(rows, articles, "tune")
    label = {(a.law, a.label): (a.law, a.number, a.suffix) for a in articles if a.in_force}
    by_hand: dict = {}
    for r in rows:
        if split_of(r["id"]) == "tune":
            for g in set(r["relevant"]):
                law = "劳动合同法" if "劳动合同法》" in g else "劳动法"
                key = label[(law, g[g.rindex("》") + 1:])]
                by_hand[key] = by_hand.get(key, 0) + 1
    assert counts == by_hand
    # An article that only dev questions have as gold is not counted.
    dev_only = {label[("劳动合同法" if "劳动合同法》" in g else "劳动法", g[g.rindex("》") + 1:])]
                for r in rows if split_of(r["id"]) == "dev" for g in r["relevant"]}
    dev_only -= set(by_hand)
    assert dev_only and not dev_only & set(counts)


@pytest.mark.fast
@pytest.mark.parametrize("text", ["{not json", '{"counts": [["劳动法", "七", 0, 1]]}',
                                  '{"rows": []}', '{"counts": [["劳动法", 7]]}'])
def test_a_damaged_prior_file_names_the_fix(tmp_path, text):
    from legalrag.errors import IndexCorruptError
    from legalrag.index.tune import PRIOR_FILE

    (tmp_path / PRIOR_FILE).write_text(text, encoding="utf-8")
    with pytest.raises(IndexCorruptError, match=PRIOR_FILE) as e:
        read_prior(tmp_path)
    assert "legalrag index build" in e.value.fix
    assert read_prior(tmp_path / "elsewhere") is None


@pytest.mark.slow
def test_tune_stage_trains_stores_and_is_kept_by_updates(questions, tmp_path):
    corpus = copy_corpus(tmp_path / "corpus", FILES)
    settings = make_settings(tmp_path, corpus, tune_questions=str(questions))
    first = build_index(settings)
    assert first.parts == ["lookup", "bm25", "dense", "tuned-queries"]
    r = Retriever.open(settings)
    assert r.query_encoder.endswith("query-encoder")
    assert r.manifest["query_encoder"]["examples"] > 10
    assert r.fusion.reranker is not None  # the shipped reranker goes with a tuned encoder
    q = "公司不给我缴社保，我可以辞职并要求经济补偿吗？"
    tuned = r.embedder.encode([q])
    base = Retriever.open(make_settings(tmp_path, corpus, tune_questions=str(questions),
                                        query_encoder="base")).embedder.encode([q])
    assert not np.allclose(tuned, base, atol=1e-3)  # the tuned encoder really differs
    # The abstain rule measures a question by the base model's cosine, never the tuned one's.
    assert np.allclose(r.base_embedder.encode([q]), base, atol=1e-6)
    rel = measure(r, q, r.search(q, k=5))
    by = {name: max(r.candidates(q, 1, "dense", vec=v)[1]["dense"].values())
          for name, v in (("base", base), ("tuned", tuned))}
    assert rel.dense == pytest.approx(by["base"]) and rel.dense != pytest.approx(by["tuned"])
    check_article_prior(settings, questions)

    def stages(**kw):
        seen: list[str] = []
        result = build_index(settings, progress=lambda s, n: seen.append(s) or (lambda k: None),
                             **kw)
        return result, seen

    # A rebuild of the unchanged corpus finds the trained encoder in the cache.
    again, seen = stages()
    assert "tune" not in seen and "tuned-queries" in again.parts
    # An update keeps the live encoder: the stage does not run.
    (corpus / "社会法/劳动法(2018-12-29).md").unlink()
    update, seen = stages(update=True)
    assert seen == [] or "tune" not in seen
    assert update.removed_files and "tuned-queries" in update.parts
    assert Retriever.open(settings).query_encoder.endswith("query-encoder")


def test_an_encoder_trained_with_older_settings_is_named(questions, tmp_path, monkeypatch,
                                                         caplog, capsys):
    """After an upgrade that changed TuneConfig, an updated index still has the encoder of
    the old settings: the retriever's log and `index info` say which and how to fix it."""
    corpus = copy_corpus(tmp_path / "corpus", FILES)
    settings = make_settings(tmp_path, corpus, tune_questions=str(questions))
    build_index(settings)
    argv = ["--corpus", str(settings.corpus_dir), "--index-dir", str(settings.index_dir)]
    with caplog.at_level("WARNING"):
        r = Retriever.open(settings)
    assert outdated(r.manifest) is None and "trained with other settings" not in caplog.text
    assert cli.main([*argv, "index", "info"]) == 0
    assert "WARNING" not in capsys.readouterr().out
    trained = tune.TuneConfig().__dict__
    newer = type("Newer", (), {"__init__": lambda self: self.__dict__.update(
        {**trained, "scale": trained["scale"] + 1})})
    monkeypatch.setattr(tune, "TuneConfig", newer)
    with caplog.at_level("WARNING"):
        Retriever.open(settings)
    said = f"scale {trained['scale']} (now {trained['scale'] + 1})"
    assert said in caplog.text and "legalrag index build" in caplog.text
    assert cli.main([*argv, "index", "info"]) == 0
    out = capsys.readouterr().out
    assert said in out and "fix: run `legalrag index build`" in out


def test_an_encoder_from_before_a_setting_existed_is_judged_by_what_it_did():
    """A manifest written before gold_loss existed was trained with the summed loss."""
    before = {k: v for k, v in tune.TuneConfig().__dict__.items() if k != "gold_loss"}
    said = outdated({"query_encoder": {"config": before}})
    now = tune.TuneConfig().gold_loss
    assert said == (None if now == "sum" else f"gold_loss sum (now {now})")


def test_each_gold_article_is_scored_on_its_own():
    """One gold far ahead satisfies the summed loss; "each" still pulls the other gold up."""
    import torch

    from legalrag.index.tune import gold_loss

    logits = torch.tensor([[12.0, 0.0, 1.0, 1.0, 0.5]], requires_grad=True)
    golds = torch.tensor([[True, True, False, False, False]])
    summed = gold_loss(logits, golds, "sum")
    each = gold_loss(logits, golds, "each")
    assert summed.item() < 1e-3 < 0.5 < each.item()
    (grad,) = torch.autograd.grad(each, logits)
    assert grad[0, 1] < -0.3 and grad[0, 0].abs() < 1e-3  # the trailing gold is pushed up
    # with one gold per question the two are the same loss
    one = torch.tensor([[False, True, False, False, False]])
    assert torch.allclose(gold_loss(logits, one, "sum"), gold_loss(logits, one, "each"))
    with pytest.raises(ValueError, match="each"):
        gold_loss(logits, golds, "max")


def test_an_update_never_trains(questions, tmp_path):
    corpus = copy_corpus(tmp_path / "corpus", FILES)
    build_index(make_settings(tmp_path, corpus))  # no tuned encoder in the live index
    settings = make_settings(tmp_path, corpus, tune_questions=str(questions))
    (corpus / "社会法/劳动法(2018-12-29).md").unlink()
    seen: list[str] = []
    result = build_index(settings, update=True,
                         progress=lambda s, n: seen.append(s) or (lambda k: None))
    assert "tune" not in seen and "tuned-queries" not in result.parts
    assert Retriever.open(settings).query_encoder == "base"


def test_mix_blends_trained_and_base_weights(tmp_path):
    from dataclasses import replace

    import torch
    from sentence_transformers import SentenceTransformer

    from legalrag.index.embed import embedding_model_dir
    from legalrag.index.tune import Example, TuneConfig, fine_tune_queries

    base = embedding_model_dir("m3e-small")
    docs = np.random.default_rng(0).normal(size=(8, 512)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    examples = [Example("试用期可以随时辞职吗", (1,)), Example("老板拖欠工资怎么办", (2, 3))]
    config = TuneConfig(epochs=2, batch_size=2, learning_rate=1e-3, warmup=0.5)
    fine_tune_queries(base, examples, docs, tmp_path / "trained", replace(config, mix=1.0))
    fine_tune_queries(base, examples, docs, tmp_path / "mixed", replace(config, mix=0.25))
    b, t, m = (SentenceTransformer(str(p), device="cpu").state_dict()
               for p in (base, tmp_path / "trained", tmp_path / "mixed"))
    floats = [k for k, v in t.items() if v.is_floating_point()]
    moved = [k for k in floats if not torch.equal(t[k], b[k])]
    assert moved  # training changed the weights
    for k in floats:
        assert torch.allclose(m[k], 0.25 * t[k] + 0.75 * b[k], atol=1e-6), k


def test_frozen_parameters_keep_the_base_values(tmp_path):
    import torch
    from sentence_transformers import SentenceTransformer

    from legalrag.index.embed import embedding_model_dir
    from legalrag.index.tune import Example, TuneConfig, fine_tune_queries

    base = embedding_model_dir("m3e-small")
    docs = np.random.default_rng(1).normal(size=(6, 512)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    examples = [Example("工伤认定要多久", (0,)), Example("房东不退押金怎么办", (4, 5))]
    config = TuneConfig(epochs=2, batch_size=2, learning_rate=1e-3, warmup=0.5, mix=1.0)
    fine_tune_queries(base, examples, docs, tmp_path / "q", config, frozen=".embeddings.")
    b, t = (SentenceTransformer(str(p), device="cpu").state_dict() for p in (base, tmp_path / "q"))
    floats = [k for k, v in t.items() if v.is_floating_point()]
    frozen = [k for k in floats if ".embeddings." in k]
    assert frozen and len(frozen) < len(floats)
    assert all(torch.equal(t[k], b[k]) for k in frozen)
    assert any(not torch.equal(t[k], b[k]) for k in floats if k not in frozen)


def check_article_prior(settings, questions) -> None:
    """The tune stage keeps the tune part's gold counts beside the encoder; the reranker's
    score gains article_prior * log(1 + count); with the weight 0 the order is the
    reranker's own, exactly."""
    from dataclasses import replace

    from conftest import ranking_from_stages

    from legalrag.index.tune import load_questions

    r = Retriever.open(settings)
    counts = read_prior(Path(r.query_encoder))
    assert counts == gold_counts(load_questions(questions), r.articles, "tune")
    assert counts and r.article_prior is not None
    for i, a in enumerate(r.articles):
        expected = settings.article_prior * np.log1p(counts.get((a.law, a.number, a.suffix), 0))
        assert r.article_prior[i] == pytest.approx(expected)
    plain = replace(settings, cross_encoder="", cross_references=False)
    q = "劳动合同期满用人单位不续签要给经济补偿吗？"
    off = Retriever.open(replace(plain, article_prior=0.0))
    assert off.article_prior is None
    assert [h.article for h in off.search(q, k=50)] == [
        off.articles[d] for d in ranking_from_stages(off, q, rerank=True)[:50]]
    on = Retriever.open(replace(plain, article_prior=5.0))
    hits = on.search(q, k=50)
    boosted = [h for h in hits if on.article_prior[on.articles.index(h.article)] > 0]
    assert boosted  # gold articles of the tune questions are among the candidates
    assert [h.article for h in hits] != [h.article for h in off.search(q, k=50)]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
