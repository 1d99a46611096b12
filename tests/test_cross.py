"""The cross-encoder stage (retrieval/cross.py): the shipped model reads question and
article together and puts a gold article above real hard negatives; with the setting off
the ranking is exactly the ranking before; it only reorders the best hits, leaves a
question that names an article alone, and a missing or broken file costs the stage, never
a search."""

import logging
import re
from dataclasses import replace

import numpy as np
import pytest
from conftest import ranking_from_stages

from legalrag.records import Article
from legalrag.retrieval.cross import (
    FROZEN,
    CrossConfig,
    CrossEncoder,
    label,
    locate,
    pair_texts,
    passage,
    read_cross,
    write_cross,
)
from legalrag.retrieval.retriever import Retriever

SHIPPED = "data/models/cross-m3e-small-2l.npz"
# Questions written for these tests (not STARD), each with the article that answers it and
# hits of the small corpus's ranking as its hard negatives.
PLANTED = [
    ("夫妻感情确已破裂，一方起诉离婚，法院应当准予离婚吗？", "民法典", 1079),
    ("劳动者每天工作时间最长是多少小时？", "劳动法", 36),
    ("公司的注册资本可以用知识产权出资吗？", "公司法", 48),
]
# More of them, for the ranking check: questions whose answer is one article of the small
# corpus, and whose article its ranking finds (a question answered by two laws' articles
# alike, such as the longest probation period, is left out).
JUDGED = PLANTED + [
    ("劳动合同到期后公司不续签，要给员工经济补偿吗？", "劳动合同法", 46),
    ("已满多少周岁的人犯罪应当负刑事责任？", "刑法", 17),
    ("男女结婚的法定年龄是多少岁？", "民法典", 1047),
    ("公司可以为股东提供担保吗？", "公司法", 15),
    ("劳动者提前多少天通知用人单位可以解除劳动合同？", "劳动合同法", 37),
]


@pytest.fixture(scope="module", params=["onnx", "torch"])
def cross(request, tmp_path_factory):
    """The shipped model on each backend (ONNX Runtime is the product's default)."""
    model = CrossEncoder.load(SHIPPED, request.param, tmp_path_factory.mktemp("cache"))
    assert model is not None, "the repository's cross-encoder must load"
    assert model.backend == request.param
    return model


@pytest.fixture(scope="module")
def reference():
    return CrossEncoder.load(SHIPPED, "torch")


@pytest.fixture(scope="module")
def plain(small_settings):
    """The small corpus's ranking without the cross-encoder."""
    return Retriever.open(replace(small_settings, cross_encoder=""))


def articles_with_gold(plain, query, law, number):
    hits = plain.search(query, k=12)
    gold = [h for h in hits if h.article.law == law and h.article.number == number]
    negatives = [h for h in hits if h not in gold][:10]
    assert gold, f"the small corpus's ranking lost {law} {number} for {query}"
    return [h.article for h in gold[:1] + negatives]


def gold_ranks(model, plain) -> list[int]:
    """The gold article's place among its question's hard negatives, 1 = above all of them,
    for every JUDGED question."""
    ranks = []
    for query, law, number in JUDGED:
        texts = model.texts(query, articles_with_gold(plain, query, law, number))
        scores = model.scores(query, texts)
        assert scores.shape == (len(texts),) and np.isfinite(scores).all()
        ranks.append(int((scores > scores[0]).sum()) + 1)
    return ranks


def test_the_shipped_model_puts_gold_articles_above_hard_negatives(cross, plain):
    """Each gold article against the ten best other hits of the small corpus's ranking:
    the model puts it first for most questions and near the top on average (a model that
    reads nothing would give about 0.27 of mean reciprocal rank)."""
    ranks = gold_ranks(cross, plain)
    first = sum(r == 1 for r in ranks)
    mrr = sum(1 / r for r in ranks) / len(ranks)
    assert first >= len(ranks) / 2 and mrr >= 0.6, ranks


def test_the_same_check_fails_for_a_model_that_does_not_read(cross, plain):
    """The test above can fail: with the head turned around, the gold articles sink."""
    ranks = gold_ranks(CrossEncoder(cross.config, _flipped(cross)), plain)
    assert sum(r == 1 for r in ranks) <= 1 and sum(1 / r for r in ranks) / len(ranks) < 0.4, \
        ranks


def test_order_adds_the_weighted_score_to_the_rerankers_or_fuses_ranks(reference, plain):
    """With the reranker's scores and a score_weight, the order is score + weight * cross
    score; without scores, or with score_weight 0 (a model file written before it), ranks
    are fused as before, whatever scores are passed."""
    state = _state(reference) | {"head.weight": reference.head_w.numpy()[None, :],
                                 "head.bias": np.array([reference.head_b])}
    joins = CrossEncoder(replace(reference.config, score_weight=0.5), state)
    ranks = CrossEncoder(replace(reference.config, score_weight=0.0), state)
    differ = 0
    for query, texts in _planted_pairs(reference, plain):
        ce = reference.scores(query, texts)
        scores = np.linspace(0.0, -0.6, len(texts))  # the ranking's order, close scores
        order, got_ce = joins.order(query, texts, scores)
        assert np.allclose(got_ce, ce, atol=1e-5)
        assert order == list(np.argsort(-(scores + 0.5 * ce), kind="stable")), query
        by_ranks, _ = ranks.order(query, texts)
        assert ranks.order(query, texts, scores)[0] == by_ranks
        assert joins.order(query, texts)[0] == by_ranks  # no scores: ranks
        assert sorted(order) == list(range(len(texts)))
        differ += order != by_ranks
    assert differ, "adding scores ordered every planted question as the ranks do"


def test_over_the_rerankers_scores_the_shipped_model_adds_its_weighted_score(small_settings):
    """The retriever passes the reranker's scores: the best `depth` hits come in the order
    of rerank + score_weight * cross, the same hits as without the stage, and below them
    nothing moves."""
    from legalrag.retrieval.fusion import Fusion

    settings = replace(small_settings, cross_references=False)
    on = Retriever.open(settings, fusion=Fusion.default())
    off = Retriever.open(replace(settings, cross_encoder=""), fusion=Fusion.default())
    depth, weight = on.cross.config.depth, on.cross.config.score_weight
    assert weight > 0, "the shipped model joins its score to the reranker's"
    for query, _, _ in PLANTED:
        after, before = on.search(query, k=depth + 10), off.search(query, k=depth + 10)
        joined = [h.scores["rerank"] + weight * h.scores["cross"] for h in after[:depth]]
        assert joined == sorted(joined, reverse=True), query
        assert sorted(h.article.id for h in after[:depth]) == \
            sorted(h.article.id for h in before[:depth])
        assert [h.article.id for h in after[depth:]] == [h.article.id for h in before[depth:]]


def _state(model: CrossEncoder) -> dict:
    return {k: v.numpy() for k, v in model.bert.state_dict().items() if k != FROZEN}


def _flipped(model: CrossEncoder) -> dict:
    return {**_state(model), "head.weight": -model.head_w.numpy()[None, :],
            "head.bias": np.array([-model.head_b])}


def _planted_pairs(model, plain):
    for query, law, number in PLANTED:
        yield query, model.texts(query, articles_with_gold(plain, query, law, number))


def test_onnx_runtime_scores_as_torch_does(reference, plain, tmp_path):
    """The export, run by ONNX Runtime, gives torch's scores on real hits of different
    lengths (padded batches, texts cut at max_len), and the same order."""
    onnx = CrossEncoder.load(SHIPPED, "onnx", tmp_path)
    assert onnx.backend == "onnx" and onnx.session is not None
    for query, texts in _planted_pairs(reference, plain):
        want, got = reference.scores(query, texts), onnx.scores(query, texts)
        assert np.abs(want - got).max() < 1e-3, query
        assert list(np.argsort(-want)) == list(np.argsort(-got)), query
        single = onnx.scores(query, texts[:1])  # a batch of one, no padding
        assert abs(float(single[0]) - float(want[0])) < 1e-3


def test_the_export_is_made_once_per_model_file_and_reused(reference, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="legalrag.retrieval.cross"):
        CrossEncoder.load(SHIPPED, "onnx", tmp_path)
    files = list((tmp_path / "onnx").iterdir())
    assert len(files) == 1 and files[0].suffix == ".onnx" and "exporting" in caplog.text
    stamp = files[0].stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="legalrag.retrieval.cross"):
        again = CrossEncoder.load(SHIPPED, "onnx", tmp_path)
    assert again.backend == "onnx" and "exporting" not in caplog.text
    assert files[0].stat().st_mtime_ns == stamp
    # another model (here the head turned around) gets a file of its own
    CrossEncoder(reference.config, _flipped(reference), backend="onnx", cache_dir=tmp_path)
    assert len(list((tmp_path / "onnx").iterdir())) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "another model's export"])
def test_a_bad_cached_export_is_caught_at_load_and_made_again(reference, plain, tmp_path,
                                                               caplog, damage):
    """The load check runs the cached file against torch: a damaged file, or a valid
    export of another model under this model's name, is exported again, and the scores
    are the model's own."""
    first = CrossEncoder.load(SHIPPED, "onnx", tmp_path)
    cached = next((tmp_path / "onnx").iterdir())
    if damage == "garbage":
        cached.write_bytes(b"garbage")
    elif damage == "truncated":
        cached.write_bytes(cached.read_bytes()[:5000])
    else:
        other = CrossEncoder(first.config, _flipped(first), backend="torch")
        other.export_onnx(cached)
    with caplog.at_level(logging.WARNING, logger="legalrag.retrieval.cross"):
        again = CrossEncoder.load(SHIPPED, "onnx", tmp_path)
    assert "exporting it again" in caplog.text
    assert again.backend == "onnx"
    query, texts = next(_planted_pairs(reference, plain))
    assert np.abs(again.scores(query, texts) - reference.scores(query, texts)).max() < 1e-3


def test_the_torch_backend_writes_no_export(tmp_path):
    model = CrossEncoder.load(SHIPPED, "torch", tmp_path)
    assert model.backend == "torch" and model.session is None
    assert not (tmp_path / "onnx").exists()


@pytest.mark.fast
def test_an_unknown_backend_is_a_config_error():
    from legalrag.config import Settings
    from legalrag.errors import ConfigError

    with pytest.raises(ConfigError, match="cross_encoder_backend 'cuda'"):
        Settings(cross_encoder_backend="cuda").validate()


def test_it_reorders_only_the_best_hits_and_off_is_the_ranking(small_settings):
    """Cross-references off, so the cross-encoder's own effect is seen: on, the best
    `depth` hits are the ranking's best, reordered, each with its cross-encoder score;
    every hit below them is where the ranking put it. Off, no hit has a cross score."""
    settings = replace(small_settings, cross_references=False)
    on = Retriever.open(settings)
    off = Retriever.open(replace(settings, cross_encoder=""))
    depth = on.cross.config.depth
    moved = 0
    for query, _, _ in PLANTED:
        before = off.search(query, k=depth + 10)
        after = on.search(query, k=depth + 10)
        key = [h.article.citation for h in before]
        got = [h.article.citation for h in after]
        assert sorted(got[:depth]) == sorted(key[:depth])  # the same hits, reordered
        assert got[depth:] == key[depth:]  # below them nothing moves
        moved += got != key
        assert [h.rank for h in after] == list(range(1, len(after) + 1))
        assert all("cross" in h.scores for h in after[:depth])
        assert not any("cross" in h.scores for h in after[depth:] + before)
        # a smaller k is the first k of the same list
        assert [h.article.citation for h in on.search(query, k=5)] == got[:5]
    assert moved, "the cross-encoder changed no ranking"


@pytest.mark.parametrize("rerank", [False, True])
def test_off_the_ranking_is_its_stages_exactly(small_settings, rerank):
    """cross_encoder = "" (cross-references off too): the hits are the reranked (or fused)
    order rebuilt here from the retriever's own stages, as before this stage existed."""
    from legalrag.retrieval.fusion import Fusion

    r = Retriever.open(replace(small_settings, cross_encoder="", cross_references=False),
                       fusion=Fusion.default() if rerank else None)
    for q, _, _ in PLANTED:
        got = [h.article.id for h in r.search(q, k=30)]
        assert got == [r.articles[d].id for d in ranking_from_stages(r, q, rerank)][:30], q


def test_a_question_that_names_an_article_is_left_alone(small_settings, plain):
    on = Retriever.open(small_settings)
    query = "《劳动合同法》第四十七条是怎么规定的？"
    got = on.search(query, k=10)
    assert got[0].article.citation == "《劳动合同法》第四十七条"
    assert [h.article.citation for h in got] == \
        [h.article.citation for h in plain.search(query, k=10)]


@pytest.mark.fast
def test_written_weights_read_back_within_int8_rounding(tmp_path):
    rng = np.random.default_rng(0)
    state = {"encoder.layer.0.attention.self.query.weight": rng.normal(size=(8, 16)),
             "encoder.layer.0.attention.self.query.bias": rng.normal(size=8),
             "embeddings.position_embeddings.weight": rng.normal(size=(4, 16)),
             "head.weight": rng.normal(size=(1, 16)), "head.bias": np.array([0.5])}
    config = CrossConfig("m3e-small", 2, 96, 20, 0.75, score_weight=1.25)
    path = tmp_path / "cross.npz"
    write_cross(path, state, config)
    got_config, got = read_cross(path)
    assert got_config == config and set(got) == set(state)
    for name, value in state.items():
        step = np.abs(value).max(axis=-1, keepdims=True) / 127 if value.ndim == 2 else 0
        assert np.all(np.abs(got[name] - value) <= step / 2 + 1e-6), name
    # embeddings and vectors are kept exactly (float32)
    assert np.array_equal(got["embeddings.position_embeddings.weight"],
                          state["embeddings.position_embeddings.weight"].astype(np.float32))


# 《劳动合同法》第十九条: four paragraphs, seven sentences and clauses.
PROBATION = ("劳动合同期限三个月以上不满一年的，试用期不得超过一个月；"
             "劳动合同期限一年以上不满三年的，试用期不得超过二个月；三年以上固定期限和无固定期限的劳动合同，试用期不得超过六个月。\n"
             "同一用人单位与同一劳动者只能约定一次试用期。\n"
             "以完成一定工作任务为期限的劳动合同或者劳动合同期限不满三个月的，不得约定试用期。\n"
             "试用期包含在劳动合同期限内。劳动合同仅约定试用期的，试用期不成立，该期限为劳动合同期限。")


@pytest.mark.fast
def test_a_short_article_is_read_whole():
    assert passage("试用期多长？", PROBATION, len(PROBATION)) == PROBATION


@pytest.mark.fast
@pytest.mark.parametrize("budget", [50, 80, 120])
def test_a_long_article_is_read_by_its_sentences_nearest_the_question(budget):
    query = "公司和我约定了两次试用期，合法吗？"  # 约定, 试用, 用期: the second paragraph
    got = passage(query, PROBATION, budget)
    assert len(got) <= budget
    sentences = [s for s in re.findall(r"[^。；\n]*[。；]", PROBATION)]
    kept = re.findall(r"[^。；\n]*[。；]", got)
    assert kept[0] == sentences[0]  # the first sentence always
    assert "同一用人单位与同一劳动者只能约定一次试用期。" in kept
    # verbatim sentences of the article, in its order
    assert [sentences.index(s) for s in kept] == sorted(sentences.index(s) for s in kept)
    # a question that shares nothing with it: the first sentence, then the article's order
    other = re.findall(r"[^。；\n]*[。；]", passage("房屋买卖", PROBATION, budget))
    assert other[0] == sentences[0] and other == sorted(other, key=sentences.index)


@pytest.mark.fast
def test_one_sentence_longer_than_the_budget_is_kept_for_the_tokenizer_to_cut():
    long = "甲" * 50 + "。"
    assert passage("问题", long, 10) == long


def _article(law, label, text, path=()):
    return Article(f"中华人民共和国{law}", law, "法律", "社会法", path, 19, 0, label, text,
                   "2012-12-28", True, "社会法/x.md", 1)


@pytest.mark.fast
def test_what_the_model_reads_beside_the_question():
    """Without passages or headings: citation, line break, whole text (as before either
    existed). With passages a long article is cut to fit 128 tokens with the question; with
    headings its part and chapter titles follow the citation, numbers dropped."""
    from transformers import AutoTokenizer

    from legalrag.index.embed import embedding_model_dir

    tok = AutoTokenizer.from_pretrained(str(embedding_model_dir("m3e-small")))
    articles = [_article("劳动合同法", "第十九条", PROBATION, ("第二章 劳动合同的订立",)),
                _article("劳动法", "第三十六条", "国家实行……")]
    whole = pair_texts(tok, CrossConfig("m3e-small", 2, 128, 20, 0.75), "试用期", articles)
    assert whole == [a.citation + "\n" + a.text for a in articles]
    cut = pair_texts(tok, CrossConfig("m3e-small", 2, 128, 20, 0.75, True), "试用期", articles)
    assert cut[1] == whole[1] and cut[0] != whole[0]
    assert len(tok("试用期", cut[0])["input_ids"]) <= 128
    titled = pair_texts(tok, CrossConfig("m3e-small", 2, 128, 20, 0.75, True, True), "试用期",
                        articles)
    assert titled[0].startswith("《劳动合同法》第十九条（劳动合同的订立）\n")
    assert titled[1] == whole[1]  # no parts, nothing added
    assert len(tok("试用期", titled[0])["input_ids"]) <= 128


@pytest.mark.fast
@pytest.mark.parametrize(("path", "shown"), [
    (("第二章 劳动合同的订立",), "（劳动合同的订立）"),
    (("侵权责任编", "第一章 一般规定"), "（侵权责任编 一般规定）"),
    (("第一编 总则", "第二章 自然人", "第四节 个体工商户和农村承包经营户"),
     "（总则 个体工商户和农村承包经营户）"),
    ((), ""),
])
def test_the_label_names_the_outermost_and_innermost_part(path, shown):
    a = _article("民法典", "第五十四条", "……", path)
    assert label(a, headings=True) == "《民法典》第五十四条" + shown
    assert label(a, headings=False) == "《民法典》第五十四条"


@pytest.mark.fast
def test_a_file_written_before_passages_and_headings_reads_them_off(tmp_path):
    path = tmp_path / "cross.npz"
    np.savez(path, meta=np.array('{"format": 1, "base": "m3e-small", "layers": 2, '
                                 '"max_len": 96, "depth": 20, "weight": 1}'),
             **{"f32:head.weight": np.ones((1, 4)), "f32:head.bias": np.zeros(1)})
    config = read_cross(path)[0]
    assert config.passages is False and config.headings is False


@pytest.mark.fast
@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04broken"])
def test_an_unreadable_file_is_refused_with_its_reason(tmp_path, content):
    path = tmp_path / "cross.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="cannot be read"):
        read_cross(path)


@pytest.mark.fast
def test_a_file_of_another_format_is_refused(tmp_path):
    path = tmp_path / "cross.npz"
    np.savez(path, meta=np.array('{"format": 99}'), x=np.zeros(3))
    with pytest.raises(ValueError, match="not a file of"):
        read_cross(path)
    np.savez(path, meta=np.array('{"format": 1, "base": "m3e-small", "layers": 2, '
                                 '"max_len": 96, "depth": 20, "weight": 1}'),
             **{"f32:head.weight": np.full((1, 4), np.nan), "f32:head.bias": np.zeros(1)})
    with pytest.raises(ValueError, match="not finite"):
        read_cross(path)


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated", "other model"])
def test_a_bad_file_costs_the_stage_not_the_search(small_settings, plain, tmp_path, caplog,
                                                   damage):
    path = tmp_path / "cross.npz"
    shipped = locate(SHIPPED).read_bytes()
    if damage == "garbage":
        path.write_bytes(b"garbage")
    elif damage == "truncated":
        path.write_bytes(shipped[: len(shipped) // 2])
    elif damage == "other model":  # weights named for a model m3e-small is not
        config, state = read_cross(locate(SHIPPED))
        state["encoder.layer.7.output.dense.weight"] = np.zeros((4, 4), dtype=np.float32)
        write_cross(path, state, config)
    r = Retriever.open(replace(small_settings, cross_encoder=str(path)))
    query = PLANTED[0][0]
    with caplog.at_level(logging.WARNING, logger="legalrag.retrieval.cross"):
        got = r.search(query, k=10)
    assert r.cross is None
    assert [h.article.citation for h in got] == \
        [h.article.citation for h in plain.search(query, k=10)]
    assert str(path) in caplog.text and 'cross_encoder to ""' in caplog.text


def test_an_export_that_cannot_be_written_leaves_the_model_on_torch(reference, tmp_path,
                                                                    caplog):
    """cache_dir is a file, so nothing can be exported into it: the model still loads,
    runs on torch and scores as torch does, and the warning says how to silence it."""
    blocked = tmp_path / "cache"
    blocked.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="legalrag.retrieval.cross"):
        model = CrossEncoder.load(SHIPPED, "onnx", blocked)
    assert model is not None and model.backend == "torch"
    assert "the export failed" in caplog.text and 'cross_encoder_backend = "torch"' in caplog.text
    texts = ["《劳动法》第三十六条\n国家实行劳动者每日工作时间不超过八小时的工时制度。"]
    assert np.allclose(model.scores("工作时间", texts), reference.scores("工作时间", texts))
    assert blocked.read_text() == "not a folder"
