"""The claim-support score: sentences, claims and features by hand; the shipped weights
hold their precision on the held-out part of the shipped labels (real embedding model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from legalrag.answer.support import (
    FEATURES,
    SupportModel,
    claim_text,
    features,
    text_features,
)
from legalrag.records import Article

ROOT = Path(__file__).resolve().parents[1]
A19 = Article("中华人民共和国劳动合同法", "劳动合同法", "法律", "社会法", (), 19, 0, "第十九条",
              "劳动合同期限三个月以上不满一年的，试用期不得超过一个月；劳动合同期限一年以上不满三年的，"
              "试用期不得超过二个月；三年以上固定期限和无固定期限的劳动合同，试用期不得超过六个月。",
              "2012-12-28", True, "劳动合同法.md", 1)


@pytest.mark.fast
def test_the_claim_drops_citations_markers_and_titles():
    claim = claim_text("依照《劳动合同法》第十九条，试用期最长六个月[1]。")
    assert claim == "依照，试用期最长六个月。"
    assert claim_text("《民法典》规定如下[2]") == "规定如下"


@pytest.mark.fast
def test_text_features_by_hand():
    quoted = text_features("根据《劳动合同法》第十九条，试用期不得超过六个月。", A19)
    bigram, trigram, longest, words, log_chars = quoted
    # The claim 根据，试用期不得超过六个月。 has 12 CJK characters in two runs: 根据 (one
    # bigram, not in the article) and 试用期不得超过六个月 (9 bigrams and 8 trigrams, all in
    # the article, which also holds the whole run: the longest shared passage, 10 of 12).
    assert bigram == pytest.approx(9 / 10) and trigram == pytest.approx(8 / 8)
    assert longest == pytest.approx(10 / 12) and log_chars == pytest.approx(np.log1p(12))
    assert 0.0 < words <= 1.0
    off = text_features("买受人在试用期内可以购买标的物，也可以拒绝购买。", A19)
    assert off[0] < bigram and off[2] < longest


@pytest.mark.fast
def test_features_without_an_embedder_have_a_zero_cosine():
    x = features([("试用期不得超过六个月。", A19)], None)
    assert x.shape == (1, len(FEATURES)) and x[0, FEATURES.index("cosine")] == 0.0


@pytest.mark.fast
def test_model_round_trip_and_threshold():
    m = SupportModel((0.0,) * 6, (1.0,) * 6, (1.0, 0, 0, 0, 0, 0), 0.0, 0.6)
    assert SupportModel.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    p = m.probability(np.array([[2.0, 0, 0, 0, 0, 0], [-2.0, 0, 0, 0, 0, 0]]))
    assert p[0] == pytest.approx(1 / (1 + np.exp(-2))) and p[1] < 0.5
    with pytest.raises(ValueError, match="features"):
        SupportModel.from_dict({**m.to_dict(), "features": ["x"]})
