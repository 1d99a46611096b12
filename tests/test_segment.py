import pytest

from legalrag.index.segment import Segmenter, corpus_terms, normalize_refs

pytestmark = pytest.mark.fast  # pure functions: the fast tier (scripts/test.sh --fast)


@pytest.fixture(scope="module")
def seg():
    return Segmenter(terms=["劳动合同法", "个体工商户条例"])


def test_chinese_and_arabic_article_numbers_tokenize_alike(seg):
    a = seg.tokenize("劳动合同法第四十七条")
    b = seg.tokenize("劳动合同法第47条")
    assert a == b
    assert "第47条" in a


def test_inserted_article_and_paragraph_references(seg):
    assert normalize_refs("第一百三十三条之一第二款") == "第133条之1第2款"
    assert "第133条之1" in seg.tokenize("刑法第一百三十三条之一")


def test_law_titles_and_legal_terms_stay_whole(seg):
    tokens = seg.tokenize("个体工商户条例规定的经济补偿")
    assert "个体工商户条例" in tokens
    assert "经济补偿" in tokens


def test_stopwords_and_punctuation_are_dropped(seg):
    tokens = seg.tokenize("请问，老板拖欠工资怎么办？")
    assert "请问" not in tokens and "怎么办" not in tokens and "，" not in tokens
    assert "拖欠工资" in tokens or "拖欠" in tokens


def test_empty_text(seg):
    assert seg.tokenize("") == [] and seg.tokenize("？！") == []


def test_corpus_terms_split_headings():
    terms = corpus_terms(["劳动合同法"], ["第四章 劳动合同的解除和终止"])
    assert "劳动合同法" in terms and "劳动合同" in terms and "解除" in terms and "终止" in terms


def test_dictionary_hash_depends_on_terms():
    assert Segmenter(["甲乙丙"]).dictionary_hash != Segmenter(["甲乙丁"]).dictionary_hash
    assert Segmenter(["甲乙丙"]).dictionary_hash == Segmenter(["甲乙丙"]).dictionary_hash
