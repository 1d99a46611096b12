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
# Every labelled file: the calibration pairs and the test batches (data/eval/README.md).
LABEL_FILES = ("support_labels.jsonl",
               *(f"support_labels_test{n}.jsonl" for n in range(4, 10)))
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


# -- with the real embedding model and the shipped weights ----------------------------------


def _article(rel: str, number: int) -> Article:
    from legalrag.index.corpus import parse_file

    parsed = parse_file(ROOT / "corpus" / rel, rel, rel.split("/")[0])
    return next(a for a in parsed.articles if a.number == number and a.suffix == 0)


@pytest.fixture(scope="module")
def scorer():
    from legalrag.answer.support import SupportScorer
    from legalrag.config import Settings
    from legalrag.index.embed import load_embedder

    embedder = load_embedder(Settings.load(env={}))
    return SupportScorer.default(embed=embedder.encode)


def test_the_shipped_weights_keep_their_precision_on_held_out_labels(scorer):
    """The calibration data's held-out part (pairs of questions the fit never saw), scored
    with the shipped weights: a ✓ is wrong in at most 5% of the cited pairs."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from calibrate_support import article_of, load_labelled, part_of

    rows = [r for r in load_labelled(ROOT / "data" / "eval" / "support_labels.jsonl")
            if part_of(r["question_id"]) == "held_out" and r.get("kind", "cited") == "cited"]
    assert len(rows) >= 20
    from legalrag.answer.support import changes_rule, quotes_clauses

    x = features([(r["sentence"], article_of(r)) for r in rows], scorer.embed)
    # the decision as the check makes it (SupportScorer.supports): the score and the rules
    kept = np.array([not changes_rule(r["sentence"], article_of(r)) for r in rows])
    quoted = np.array([quotes_clauses(r["sentence"], article_of(r)) for r in rows])
    given = ((scorer.model.probability(x) >= scorer.model.threshold) | quoted) & kept
    assert list(given) == [scorer.supports(r["sentence"], article_of(r)) for r in rows]
    truth = np.array([r["label"] == "supported" for r in rows])
    assert given.any(), "the scorer supports nothing: a ✓ would never be shown"
    assert (given & truth).sum() / given.sum() >= 0.95


def test_a_real_article_on_another_matter_does_not_support_the_claim(scorer):
    """The trap of issue 11: 《民法典》第六百三十七条 (试用买卖) cited for a rule on job
    probation is among the sources, and unsupported; the labour law article is supported."""
    from legalrag.answer.check import CorpusFacts, check_answer
    from legalrag.vocab import UNSUPPORTED, VERIFIED

    a19 = _article("社会法/劳动合同法(2012-12-28).md", 19)
    a637 = _article("民法典/合同编.md", 637)
    claim = "劳动合同期限一年以上不满三年的，试用期不得超过二个月"
    assert scorer.supports(claim + "。", a19)
    assert not scorer.supports("员工的试用期由用人单位确定。", a637)
    facts = CorpusFacts.from_articles([a19, a637])
    text = f"根据《民法典》第六百三十七条，员工的试用期由用人单位确定。{claim}[2]。"
    labels = {c.raw: c.label for c in check_answer(text, [a637, a19], facts, scorer.supports)}
    assert labels["《民法典》第六百三十七条"] == UNSUPPORTED and labels["[2]"] == VERIFIED


A913 = Article("中华人民共和国民法典", "民法典", "法律", "", (), 913, 0, "第九百一十三条",
               "保管人发现入库仓储物有变质或者其他损坏，危及其他仓储物的安全和正常保管的，"
               "应当催告存货人或者仓单持有人作出必要的处置。因情况紧急，保管人可以作出必要的处置；"
               "但是，事后应当将该情况及时通知存货人或者仓单持有人。", "2020-05-28", True, "", 0)


@pytest.mark.fast
@pytest.mark.parametrize(("sentence", "change"), [
    # a real answer of the default model (pair stard-174:1): 可以 where the article says 应当
    ("根据《民法典》第九百一十三条，保管人发现入库仓储物有变质或者其他损坏，危及其他仓储物的安全和"
     "正常保管的，可以催告存货人或者仓单持有人作出必要的处置。", ("可以", "应当")),
    # words of the article left out just before the change: still its 应当 that was changed
    ("保管人发现入库仓储物有变质或者其他损坏的，不得催告存货人或者仓单持有人。",
     ("不得", "应当")),
    ("因情况紧急，保管人不可作出必要的处置。", ("不", "")),  # see below: an insertion
    ("试用期不得超过三个月。", ("三", "一")),  # no period of the article is 三个月
    # a subject of the sentence's own put in before the changed modal (保管人可以 for 应当)
    ("保管人发现入库仓储物有变质或者其他损坏，危及其他仓储物的安全和正常保管的，保管人可以催告"
     "存货人或者仓单持有人作出必要的处置。", ("可以", "应当")),
    ("保管人发现入库仓储物有变质或者其他损坏，危及其他仓储物的安全和正常保管的，保管人必须催告"
     "存货人或者仓单持有人作出必要的处置。", None),
    # the same class, or words left out, or the article's own words: not an alteration
    ("保管人发现入库仓储物有变质或者其他损坏的，必须催告存货人或者仓单持有人作出必要的处置。",
     None),
    ("因情况紧急，保管人可以作出必要的处置。", None),
    ("试用期不得超过六个月。", None),
    ("试用期不得超过6个月。", None),  # the same number in digits
    ("保管人发现仓储物变质的，事后应当及时通知存货人。", None),
])
def test_a_copied_sentence_that_changes_the_rule_is_altered(sentence, change):
    from legalrag.answer.support import altered

    article = A19 if "试用期" in sentence else A913
    if change == ("不", ""):
        # 不可 for 可以 is a replacement of 以 by 不…: caught only when aligned as one; the
        # check does not claim more than it does, so the result is either None or a
        # forbids/permits pair.
        got = altered(sentence, article)
        assert got is None or {"不" in got[0], "可" in got[1]} == {True}
        return
    assert altered(sentence, article) == change


def test_the_scorer_never_supports_an_altered_copy():
    from dataclasses import replace

    from legalrag.answer.support import SupportScorer

    # A threshold of 0: every score passes, so only the alteration rule can say no.
    lenient = SupportScorer(replace(SupportModel.default(), threshold=0.0), embed=None)
    copied = ("保管人发现入库仓储物有变质或者其他损坏，危及其他仓储物的安全和正常保管的，"
              "{}催告存货人或者仓单持有人作出必要的处置。")
    assert lenient.supports(copied.format("应当"), A913)
    assert lenient.supports(copied.format("必须"), A913)
    assert not lenient.supports(copied.format("可以"), A913)
    assert not lenient.supports(copied.format("不得"), A913)


A699 = Article("中华人民共和国民法典", "民法典", "法律", "民法商法", (), 699, 0, "第六百九十九条",
               "同一债务有两个以上保证人的，保证人应当按照保证合同约定的保证份额，承担保证责任；"
               "没有约定保证份额的，债权人可以请求任何一个保证人在其保证范围内承担保证责任。",
               "2021-01-01", True, "民法典.md", 1)


@pytest.mark.fast
@pytest.mark.parametrize(("sentence", "dropped"), [
    # the rule after ；, copied without the condition before it
    ("根据《民法典》第六百九十九条，债权人可以请求任何一个保证人在其保证范围内承担保证责任。",
     "没有约定保证份额的"),
    # the condition kept: a faithful copy
    ("没有约定保证份额的，债权人可以请求任何一个保证人在其保证范围内承担保证责任。", None),
    # its own facts first: an application of the rule, not a copy of it
    ("本案保证合同没有约定份额，债权人可以请求任何一个保证人在其保证范围内承担保证责任。", None),
    # no condition before the copied words (the start of a sentence of the article)
    ("同一债务有两个以上保证人的，保证人应当按照保证合同约定的保证份额，承担保证责任。", None),
    # too short to be a copy
    ("债权人可以请求。", None),
])
def test_a_copy_that_leaves_out_the_articles_condition_is_caught(sentence, dropped):
    from legalrag.answer.support import dropped_condition

    assert dropped_condition(sentence, A699) == dropped


GOV = "最高人民法院关于审理政府信息公开行政案件若干问题的规定"
TOUR = "最高人民法院关于审理旅游纠纷案件适用法律若干问题的规定"
A_GOV12 = Article(GOV, "政府信息公开规定", "司法解释", "", (), 12, 0, "第十二条",
                  "有下列情形之一，被告已经履行法定告知或者说明理由义务的，人民法院应当判决驳回原告的"
                  "诉讼请求：\n（一）不属于政府信息、政府信息不存在的；", "2011-08-13", True, "", 1)
A_TOUR3 = Article(TOUR, "旅游纠纷规定", "司法解释", "", (), 3, 0, "第三条",
                  "因旅游经营者方面的同一原因造成旅游者人身损害、财产损失，旅游者选择请求旅游经营者"
                  "承担违约责任或者侵权责任的，人民法院应当根据当事人选择的案由进行审理。",
                  "2020-12-29", True, "", 1)


A_TOUR16 = Article(TOUR, "旅游纠纷规定", "司法解释", "", (), 16, 0, "第十六条",
                   "因公共客运交通工具延误，导致合同不能按照约定履行，旅游者请求旅游经营者退还未实际"
                   "发生的费用的，人民法院应予支持。合同另有约定的除外。\n因旅游者自身原因导致合同不能"
                   "履行，旅游者请求旅游经营者退还全部费用的，人民法院不予支持。",
                   "2020-12-29", True, "", 1)
A_TOUR20 = Article(TOUR, "旅游纠纷规定", "司法解释", "", (), 20, 0, "第二十条",
                   "旅游者要求旅游经营者返还下列费用的，人民法院应予支持：\n"
                   "（一）因拒绝旅游经营者安排的购物活动或者另行付费的项目被增收的费用；\n"
                   "（二）在同一旅游行程中，旅游经营者提供相同服务，因旅游者的年龄、职业等差异而增收的"
                   "费用。", "2020-12-29", True, "", 1)
M454 = Article("中华人民共和国民法典", "民法典", "法律", "", (), 454, 0, "第四百五十四条",
               "债务人可以请求留置权人在债务履行期限届满后行使留置权；留置权人不行使的，债务人可以"
               "请求人民法院拍卖、变卖留置财产。", "2021-01-01", True, "", 1)
M1258 = Article("中华人民共和国民法典", "民法典", "法律", "", (), 1258, 0, "第一千二百五十八条",
                "在公共场所或者道路上挖掘、修缮安装地下设施等造成他人损害，施工人不能证明已经设置明显"
                "标志和采取安全措施的，应当承担侵权责任。\n窨井等地下设施造成他人损害，管理人不能证明"
                "尽到管理职责的，应当承担侵权责任。", "2021-01-01", True, "", 1)


@pytest.mark.fast
@pytest.mark.parametrize(("sentence", "article", "joined"), [
    # one party given another paragraph's defence
    ("窨井等地下设施造成他人损害，管理人不能证明已经设置明显标志和采取安全措施的，应当承担侵权"
     "责任。", M1258, True),
    # a list read out: its items in the place of the lead's 下列费用 (the fifth batch,
    # labelled supported by both reviewers)
    ("根据《旅游纠纷规定》第二十条，旅游者可以要求旅游经营者返还因拒绝旅游经营者安排的购物活动"
     "或者另行付费的项目被增收的费用，以及在同一旅游行程中，旅游经营者提供相同服务，因旅游者的"
     "年龄、职业等差异而增收的费用。", A_TOUR20, False),
    # words of its own before a copy of one sentence: the comma before the copy is no
    # sign of the other sentence (…的，债务人可以请求人民法院…; sixth batch, supported)
    ("根据《民法典》第四百五十四条，债权期满后，债务人可以请求留置权人在债务履行期限届满后"
     "行使留置权。", M454, False),
])
def test_a_splice_is_two_passages_joined_but_a_list_read_out_is_not(sentence, article, joined):
    from legalrag.answer.support import spliced

    assert (spliced(sentence, article) is not None) is joined


@pytest.mark.fast
@pytest.mark.parametrize(("sentence", "article", "dropped"), [
    # the fifth batch's wrong ✓ (2026-12-07): a rule that holds only in one of the cases
    # listed, copied as if it always held
    ("根据《政府信息公开规定》第十二条，被告已经履行法定告知或者说明理由义务的，人民法院应当"
     "判决驳回原告的诉讼请求。", A_GOV12, "有下列情形之一"),
    ("有下列情形之一，被告已经履行法定告知或者说明理由义务的，人民法院应当判决驳回原告的"
     "诉讼请求。", A_GOV12, None),
    # a cause the rule is bound to (因…造成…), left out
    ("旅游者选择请求旅游经营者承担违约责任或者侵权责任的，人民法院应当根据当事人选择的案由"
     "进行审理。", A_TOUR3, "因旅游经营者方面的同一原因造成旅游者人身损害、财产损失"),
    ("因旅游经营者方面的同一原因造成旅游者人身损害、财产损失，旅游者选择请求旅游经营者承担"
     "违约责任或者侵权责任的，人民法院应当根据当事人选择的案由进行审理。", A_TOUR3, None),
])
def test_a_list_or_a_cause_before_the_rule_is_a_condition_too(sentence, article, dropped):
    from legalrag.answer.support import dropped_condition

    assert dropped_condition(sentence, article) == dropped


def civil_code(number: int, text: str) -> Article:
    """An article of the 民法典, in force."""
    from legalrag.numerals import article_label

    return Article("中华人民共和国民法典", "民法典", "法律", "", (), number, 0,
                   article_label(number, 0), text, "2021-01-01", True, "", 1)


M447 = civil_code(447, "债务人不履行到期债务，债权人可以留置已经合法占有的债务人的动产，并有权就"
                  "该动产优先受偿。\n前款规定的债权人为留置权人，占有的动产为留置财产。")
WY47 = Article("物业管理条例", "物业管理条例", "行政法规", "", (), 47, 0, "第四十七条",
               "物业使用人在物业管理活动中的权利义务由业主和物业使用人约定，但不得违反法律、法规和"
               "管理规约的有关规定。\n物业使用人违反本条例和管理规约的规定，有关业主应当承担连带"
               "责任。", "2018-03-19", True, "", 1)
M673 = civil_code(673, "借款人未按照约定的借款用途使用借款的，贷款人可以停止发放借款、提前收回"
                  "借款或者解除合同。")
M950 = civil_code(950, "物业服务合同终止后，在业主或者业主大会选聘的新物业服务人或者决定自行管理"
                  "的业主接管之前，原物业服务人应当继续处理物业服务事项，并可以请求业主支付该期间"
                  "的物业费。")
JD20 = Article("最高人民法院关于审理民间借贷案件适用法律若干问题的规定", "民间借贷规定", "司法解释",
               "", (), 20, 0, "第二十条", "他人在借据、收据、欠条等债权凭证或者借款合同上签名或者"
               "盖章，但是未表明其保证人身份或者承担保证责任，或者通过其他事实不能推定其为保证人，"
               "出借人请求其承担保证责任的，人民法院不予支持。", "2020-12-29", True, "", 1)


@pytest.mark.fast
@pytest.mark.parametrize(("sentence", "article", "dropped"), [
    # the sixth batch's wrong ✓ (2026-12-07): the condition dropped and the subject named
    # by the article's next paragraph (留置权人 for 债权人)
    ("根据《民法典》第四百四十七条，留置权人可以留置已经合法占有的债务人的动产，并有权就该动产"
     "优先受偿。", M447, "债务人不履行到期债务"),
    ("留置权人有权留置已经合法占有的债务人的动产。", M447, "债务人不履行到期债务"),
    ("债务人不履行到期债务，留置权人可以留置已经合法占有的债务人的动产。", M447, None),
    # ... and whom the condition is about left out: any breach made the owners liable
    ("根据《物业管理条例》第四十七条，违反本条例和管理规约的规定，有关业主应当承担连带责任。",
     WY47, "物业使用人"),
    ("物业使用人违反本条例和管理规约的规定，有关业主应当承担连带责任。", WY47, None),
    # the clause begun inside and not gone past: no rule stated without its actor
    ("违反本条例和管理规约的规定", WY47, None),
])
def test_a_condition_dropped_with_the_subject_renamed_or_its_actor_left_out(sentence, article,
                                                                          dropped):
    from legalrag.answer.support import dropped_condition

    assert dropped_condition(sentence, article) == dropped


@pytest.mark.fast
@pytest.mark.parametrize(("sentence", "article", "skipped"), [
    # the sixth batch's wrong ✓: the condition in the middle of the article's sentence
    ("根据《民法典》第九百五十条，物业服务合同终止后，原物业服务人应当继续处理物业服务事项，并"
     "可以请求业主支付该期间的物业费。", M950,
     "在业主或者业主大会选聘的新物业服务人或者决定自行管理的业主接管之前"),
    ("物业服务合同终止后，在业主或者业主大会选聘的新物业服务人或者决定自行管理的业主接管之前，"
     "原物业服务人应当继续处理物业服务事项。", M950, None),
    # one alternative of the condition left out: the case kept still leads to the rule
    # (the sixth batch, labelled supported)
    ("根据《民间借贷规定》第二十条，如果他人在借据、收据、欠条等债权凭证或者借款合同上签名或者"
     "盖章，但是未表明其保证人身份或者承担保证责任，出借人请求其承担保证责任的，人民法院不予"
     "支持。", JD20, None),
])
def test_a_condition_skipped_in_the_middle_of_a_copy(sentence, article, skipped):
    from legalrag.answer.support import skipped_condition

    assert skipped_condition(sentence, article) == skipped


M760 = civil_code(760, "融资租赁合同无效，当事人就该情形下租赁物的归属有约定的，按照其约定；没有"
                  "约定或者约定不明确的，租赁物应当返还出租人。")
M741 = civil_code(741, "出租人、出卖人、承租人可以约定，出卖人不履行买卖合同义务的，由承租人行使"
                  "索赔的权利。承租人行使索赔权利的，出租人应当协助。")


@pytest.mark.fast
@pytest.mark.parametrize(("sentence", "article", "dropped"), [
    # the seventh batch's wrong ✓ (2026-12-07): the case the copy refers back to (该情形)
    ("根据《民法典》第七百六十条，当事人就该情形下租赁物的归属有约定的，按照其约定；", M760,
     "融资租赁合同无效"),
    ("融资租赁合同无效，当事人就该情形下租赁物的归属有约定的，按照其约定。", M760, None),
    # ... and what holds only if the parties agree on it (可以约定)
    ("根据《民法典》第七百四十一条，出卖人不履行买卖合同义务的，由承租人行使索赔的权利。", M741,
     "出租人、出卖人、承租人可以约定"),
    ("出租人、出卖人、承租人可以约定，出卖人不履行买卖合同义务的，由承租人行使索赔的权利。",
     M741, None),
])
def test_a_case_referred_back_to_or_an_agreement_is_a_condition_too(sentence, article, dropped):
    from legalrag.answer.support import dropped_condition

    assert dropped_condition(sentence, article) == dropped


XK12 = Article("中华人民共和国行政许可法", "行政许可法", "法律", "", (), 12, 0, "第十二条",
               "下列事项可以设定行政许可：\n（一）直接涉及国家安全、公共安全等特定活动，需要按照法定"
               "条件予以批准的事项；\n（二）企业或者其他组织的设立等，需要确定主体资格的事项；",
               "2019-04-23", True, "", 1)
LD44 = Article("中华人民共和国劳动法", "劳动法", "法律", "", (), 44, 0, "第四十四条",
               "有下列情形之一的，用人单位应当按照下列标准支付高于劳动者正常工作时间工资的工资报酬："
               "\n（一）安排劳动者延长工作时间的，支付不低于工资的百分之一百五十的工资报酬；",
               "2018-12-29", True, "", 1)


@pytest.mark.fast
@pytest.mark.parametrize(("sentence", "article", "dropped"), [
    # the eighth batch's wrong ✓: an item that is only what the lead's rule applies to,
    # copied without the rule (下列事项可以设定行政许可)
    ("根据《行政许可法》第十二条，直接涉及国家安全、公共安全等特定活动，需要按照法定条件予以"
     "批准的事项；", XK12, "下列事项可以设定行政许可"),
    ("直接涉及国家安全、公共安全等特定活动，需要按照法定条件予以批准的事项，可以设定行政许可。",
     XK12, None),
    # an item with a rule of its own (……的，支付……): the lead only announces the list
    ("根据《劳动法》第四十四条，安排劳动者延长工作时间的，支付不低于工资的百分之一百五十的工资"
     "报酬。", LD44, None),
])
def test_a_lead_that_states_the_rule_its_items_fall_under(sentence, article, dropped):
    from legalrag.answer.support import dropped_lead

    assert dropped_lead(sentence, article) == dropped


M815 = civil_code(815, "实名制客运合同的旅客丢失客票的，可以请求承运人挂失补办，承运人不得再次收取"
                  "票款和其他不合理费用。")
M758 = civil_code(758, "当事人约定租赁期限届满租赁物归承租人所有，承租人已经支付大部分租金，"
                  "但是无力支付剩余租金，出租人因此解除合同收回租赁物，收回的租赁物的价值超过"
                  "承租人欠付的租金以及其他费用的，承租人可以请求相应返还。")


@pytest.mark.fast
@pytest.mark.parametrize(("rule", "sentence", "article", "left"), [
    # the eighth batch's wrong ✓ left alone on 2026-12-07 (stard-1449:1): what narrows the
    # subject (实名制客运合同的) left out, so every passenger may have a lost ticket replaced
    ("dropped_condition", "根据《民法典》第八百一十五条，旅客丢失客票的，可以请求承运人挂失补办，"
     "承运人不得再次收取票款和其他不合理费用。", M815, "实名制客运合同的"),
    ("dropped_condition", "实名制客运合同的旅客丢失客票的，可以请求承运人挂失补办。", M815, None),
    ("dropped_condition", "旅客丢失客票的", M815, None),  # not past the clause: no rule
    # whose officer acts goes without saying (法人的法定代表人)
    ("dropped_condition", "法定代表人因执行职务造成他人损害的，由法人承担民事责任。",
     civil_code(62, "法人的法定代表人因执行职务造成他人损害的，由法人承担民事责任。"), None),
    # nor what opens a definition (seen on a saved dev answer, 著作权法第四十九条)
    ("dropped_condition", "技术措施，是指用于防止、限制未经权利人许可浏览、欣赏作品的有效技术。",
     civil_code(1, "本法所称的技术措施，是指用于防止、限制未经权利人许可浏览、欣赏作品的"
                   "有效技术。"), None),
    # ... and stard-1308:1: half of the condition cut out across a comma
    ("skipped_condition", "根据《民法典》第七百五十八条，当事人约定租赁期限届满租赁物归承租人所有，"
     "承租人无力支付剩余租金，出租人因此解除合同收回租赁物，收回的租赁物的价值超过承租人欠付的"
     "租金以及其他费用的，承租人可以请求相应返还。", M758, "已经支付大部分租金，但是"),
    ("skipped_condition", "承租人已经支付大部分租金，但是无力支付剩余租金，出租人因此解除合同收回"
     "租赁物，收回的租赁物的价值超过承租人欠付的租金以及其他费用的，承租人可以请求相应返还。",
     M758, None),
    # words cut across a comma after the condition (…的，) are not a condition left out
    ("skipped_condition", "实名制客运合同的旅客丢失客票的，可以请求承运人收取票款和其他不合理"
     "费用。", M815, None),
])
def test_a_qualifier_or_half_a_condition_left_out(rule, sentence, article, left):
    from legalrag.answer import support

    assert getattr(support, rule)(sentence, article) == left


def test_the_scorer_never_supports_a_copy_without_its_condition():
    from dataclasses import replace

    from legalrag.answer.support import SupportScorer

    lenient = SupportScorer(replace(SupportModel.default(), threshold=0.0), embed=None)
    assert not lenient.supports("根据《民法典》第六百九十九条，债权人可以请求任何一个保证人在其"
                                "保证范围内承担保证责任。", A699)
    assert lenient.supports("根据《民法典》第六百九十九条，没有约定保证份额的，债权人可以请求"
                            "任何一个保证人在其保证范围内承担保证责任。", A699)


@pytest.mark.fast
def test_the_rules_never_reject_a_sentence_the_reviewers_found_supported():
    """Every rule of changes_rule on every labelled cited pair, of the calibration file and
    of the test batches (support_labels_test4…8.jsonl): a copy that changes the rule must
    be one both reviewers (or the joint label) found unsupported; no rule may cost a
    supported sentence its ✓. They must also catch the cases they were made for.

    The eighth batch was labelled after the rules were written, and its reviewers found
    four sentences supported that the rules reject (docs/evaluation.md, "An eighth batch"):
    刑法第二百二十四条 without 有下列情形之一 (the fifth batch's reviewers read that lead as
    a condition), the same article's 在签订、履行合同过程中 said in other words before the
    copy, 民法典第八百二十九条's duty to compensate without the time limit on the right, and
    行政许可法第二十九条's 申请人 named 公民、法人或者其他组织 from its first paragraph. They
    are pinned here: one more such rejection fails the test."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from calibrate_support import article_of, load_labelled

    from legalrag.answer.support import (
        altered,
        defined_otherwise,
        dropped_condition,
        dropped_lead,
        skipped_condition,
        spliced,
    )

    rows = [r for name in LABEL_FILES
            for r in load_labelled(ROOT / "data" / "eval" / name) if r["kind"] == "cited"]
    known = {"dropped": {"stard-1401:1", "stard-1465:1"}, "skipped": {"stard-1380:1"},
             "spliced": {"stard-1342:1"}}
    fired = {name: [r for r in rows if rule(r["sentence"], article_of(r)) is not None]
             for name, rule in (("altered", altered), ("dropped", dropped_condition),
                                ("skipped", skipped_condition), ("lead", dropped_lead),
                                ("spliced", spliced), ("defines", defined_otherwise))}
    assert "stard-613:1" in {r["pair"] for r in fired["spliced"]}  # 第一千二百五十八条
    for name, hits in fired.items():
        assert hits, f"{name} catches none of the labelled copies it was written for"
        wrong = {r["pair"] for r in hits if r["label"] == "supported"}
        assert wrong == known.get(name, set()), f"{name} rejects supported sentences: {wrong}"
    # written for a hole found by hand, not in the labelled answers: it may catch none
    from legalrag.answer.support import changed_number

    wrong = [r["pair"] for r in rows if r["label"] == "supported"
             and changed_number(r["sentence"], article_of(r)) is not None]
    assert not wrong, f"changed_number rejects supported sentences: {wrong}"


M977 = Article("中华人民共和国民法典", "民法典", "法律", "民法商法", (), 977, 0, "第九百七十七条",
               "合伙人死亡、丧失民事行为能力或者终止的，合伙合同终止；但是，合伙合同另有约定或者"
               "根据合伙事务的性质不宜终止的除外。", "2021-01-01", True, "民法典.md", 1)
HH44 = Article("中华人民共和国合伙企业法", "合伙企业法", "法律", "民法商法", (), 44, 0,
               "第四十四条", "入伙的新合伙人与原合伙人享有同等权利，承担同等责任。"
               "入伙协议另有约定的，从其约定。\n新合伙人对入伙前合伙企业的债务承担无限连带责任。",
               "2007-06-01", True, "合伙企业法.md", 1)
M369 = Article("中华人民共和国民法典", "民法典", "法律", "民法商法", (), 369, 0, "第三百六十九条",
               "居住权不得转让、继承。设立居住权的住宅不得出租，但是当事人另有约定的除外。",
               "2021-01-01", True, "民法典.md", 1)


@pytest.mark.fast
@pytest.mark.parametrize(("sentence", "article", "proviso"), [
    # the fourth batch's wrong ✓: a rule copied without the 但是 that follows it
    ("根据《民法典》第九百七十七条，合伙人死亡、丧失民事行为能力或者终止的，合伙合同终止。", M977,
     "但是，合伙合同另有约定或者根据合伙事务的性质不宜终止的除外"),
    # ... and without the next sentence, which qualifies it
    ("根据《合伙企业法》第四十四条，入伙的新合伙人与原合伙人享有同等权利，承担同等责任。", HH44,
     "入伙协议另有约定的，从其约定"),
    # the next sentence is another rule with its own 但是: nothing left out of this one
    ("根据《民法典》第三百六十九条，居住权不得转让、继承。", M369, None),
    # the sentence states the exception itself
    ("合伙人死亡的，合伙合同终止，但合伙合同另有约定的除外。", M977, None),
    # not a copy
    ("合伙合同一般会终止。", M977, None),
])
def test_a_copy_that_leaves_out_the_proviso_after_it_is_found(sentence, article, proviso):
    from legalrag.answer.support import omitted_proviso

    assert omitted_proviso(sentence, article) == proviso


@pytest.mark.fast
def test_the_proviso_rule_on_the_labelled_pairs():
    """omitted_proviso does not take a ✓ away (the calibration reviewers called such copies
    supported, the fourth batch's did not); it shows the exception beside the ✓. On the
    fourth batch it finds exactly the three copies that batch labelled wrong for leaving
    out a proviso; on the calibration file, only copies whose article goes on with one."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from calibrate_support import article_of, load_labelled

    from legalrag.answer.support import omitted_proviso

    def fired(name: str) -> list[tuple[dict, str]]:
        rows = [r for r in load_labelled(ROOT / "data" / "eval" / name) if r["kind"] == "cited"]
        return [(r, p) for r in rows if (p := omitted_proviso(r["sentence"], article_of(r)))]

    test4 = fired("support_labels_test4.jsonl")
    assert sorted(r["article"] for r, _ in test4) == sorted([
        "《民法典》第九百七十七条", "《合伙企业法》第四十四条",
        "《最高人民法院关于审理建设工程施工合同纠纷案件适用法律问题的解释（一）》第十四条"])
    assert all(r["label"] == "not_supported" for r, _ in test4)
    calibration = fired("support_labels.jsonl")
    assert 5 <= len(calibration) <= 20
    for r, proviso in calibration:
        assert proviso in article_of(r).text and proviso not in r["sentence"]
        assert any(w in proviso for w in ("但", "除外", "另有"))


M1003 = Article("中华人民共和国民法典", "民法典", "法律", "民法商法", (), 1003, 0, "第一千零三条",
                "自然人享有身体权。自然人的身体完整和行动自由受法律保护。任何组织或者个人不得侵害"
                "他人的身体权。", "2021-01-01", True, "民法典.md", 1)
G14 = Article("工伤保险条例", "工伤保险条例", "行政法规", "社会法", (), 14, 0, "第十四条",
              "职工有下列情形之一的，应当认定为工伤：\n（一）在工作时间和工作场所内，因工作原因受到"
              "事故伤害的；\n（四）患职业病的；", "2010-12-20", True, "工伤保险条例.md", 1)


M730 = Article("中华人民共和国民法典", "民法典", "法律", "民法商法", (), 730, 0, "第七百三十条",
               "当事人对租赁期限没有约定或者约定不明确，依据本法第五百一十条的规定仍不能确定的，"
               "视为不定期租赁；当事人可以随时解除合同，但是应当在合理期限之前通知对方。",
               "2021-01-01", True, "民法典.md", 1)
COPY730 = ("根据《民法典》第七百三十条，当事人对租赁期限没有约定或者约定不明确，"
           "依据本法第五百一十条的规定仍不能确定的，视为不定期租赁。")


@pytest.mark.fast
@pytest.mark.parametrize(("sentence", "article", "quoted"), [
    # a copy that keeps the article's own reference to another article (a chat of
    # 2026-12-07 left it at 〔未能核实此说法〕), and the same with the reference changed
    (COPY730, M730, True),
    (COPY730.replace("第五百一十条", "第五百一十一条"), M730, False),
    (COPY730.replace("依据本法第五百一十条的规定", ""), M730, False),
    # a short sentence that is the article's first sentence, word for word
    ("根据《民法典》第一千零三条，自然人享有身体权。", M1003, True),
    ("自然人享有身体权[1]。", M1003, True),
    # a whole later sentence, its punctuation changed
    ("依照《民法典》第一千零三条 任何组织或者个人，不得侵害他人的身体权", M1003, True),
    # a list's lead with 以下 where the article says 下列
    ("根据《工伤保险条例》第十四条，职工有以下情形之一的，应当认定为工伤：", G14, True),
    # starts inside a sentence: what came before it is left out
    ("根据《劳动合同法》第十九条，试用期不得超过六个月。", A19, False),
    ("身体完整和行动自由受法律保护。", M1003, False),
    # ends inside a clause
    ("根据《民法典》第一千零三条，自然人享有身体", M1003, False),
    # the same in digits, and with a number changed
    ("劳动合同期限3个月以上不满1年的，试用期不得超过1个月。", A19, True),
    ("劳动合同期限3个月以上不满1年的，试用期不得超过2个月。", A19, False),
    # too short to be a rule, and a paraphrase
    ("自然人享有", M1003, False),
    ("根据《民法典》第一千零三条，身体权包括身体完整和行动自由。", M1003, False),
    # a claim the court is to grant (……请求……的，人民法院应予支持), said as the right it gives
    ("根据《旅游纠纷规定》第十六条，因公共客运交通工具延误，导致合同不能按照约定履行，旅游者"
     "可以请求旅游经营者退还未实际发生的费用。", A_TOUR16, True),
    ("因公共客运交通工具延误，导致合同不能按照约定履行，旅游者请求旅游经营者退还未实际发生的"
     "费用的，人民法院应予支持。", A_TOUR16, True),
    # without the delay it is bound to, or a claim the court refuses: not the article's
    ("旅游者可以请求旅游经营者退还未实际发生的费用。", A_TOUR16, False),
    ("根据《旅游纠纷规定》第十六条，因公共客运交通工具延误，导致合同不能按照约定履行，旅游者"
     "可以请求旅游经营者退还全部费用。", A_TOUR16, False),
    ("因旅游者自身原因导致合同不能履行，旅游者可以请求旅游经营者退还全部费用。", A_TOUR16, False),
])
def test_quotes_clauses(sentence, article, quoted):
    from legalrag.answer.support import quotes_clauses

    assert quotes_clauses(sentence, article) is quoted


def test_a_quotation_of_whole_clauses_is_supported_and_adds_no_wrong_tick(scorer):
    """A sentence that quotes whole clauses of its article from a sentence's start gets ✓
    even when it is too short for the score (自然人享有身体权). On every labelled cited pair
    (calibration file and fourth batch), each ✓ the rule adds to the score's is a pair the
    reviewers found supported, and it adds some."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from calibrate_support import article_of, load_labelled

    from legalrag.answer.support import changes_rule, quotes_clauses

    assert scorer.supports("根据《民法典》第一千零三条，自然人享有身体权。", M1003)
    assert scorer.score("根据《民法典》第一千零三条，自然人享有身体权。", M1003) \
        < scorer.model.threshold
    rows = [r for name in LABEL_FILES
            for r in load_labelled(ROOT / "data" / "eval" / name) if r["kind"] == "cited"]
    added = [r for r in rows if quotes_clauses(r["sentence"], article_of(r))
             and not changes_rule(r["sentence"], article_of(r))
             and scorer.score(r["sentence"], article_of(r)) < scorer.model.threshold]
    assert added, "the rule adds no ✓ to the labelled pairs"
    # The exceptions: a list's lead read alone (旅行社可以经营以下业务：, fifth batch), which
    # its reviewers found empty and the earlier ones labelled supported (有下列情形之一的，不
    # 属于医疗事故：), while in its answer the list follows as a verified copy; and a quotation
    # one reviewer found supported and the other did not (seventh batch: an article on
    # another matter than the question, a rule without the special case after its ；).
    wrong = [r["pair"] for r in added if r["label"] != "supported"
             and not r["sentence"].rstrip().endswith("：")
             and r.get("label_a", "") == r.get("label_b", "")]
    assert not wrong, f"the rule gives ✓ to unsupported sentences: {wrong}"


A47 = Article("中华人民共和国劳动合同法", "劳动合同法", "法律", "社会法", (), 47, 0, "第四十七条",
              "经济补偿按劳动者在本单位工作的年限，每满一年支付一个月工资的标准向劳动者支付。"
              "六个月以上不满一年的，按一年计算；不满六个月的，向劳动者支付半个月工资的经济补偿。\n"
              "劳动者月工资高于用人单位所在直辖市、设区的市级人民政府公布的本地区上年度职工月平均"
              "工资三倍的，向其支付经济补偿的标准按职工月平均工资三倍的数额支付，向其支付经济补偿的"
              "年限最高不超过十二年。", "2012-12-28", True, "劳动合同法.md", 1)


@pytest.mark.fast
@pytest.mark.parametrize(("sentence", "article", "change"), [
    # one clause's condition joined to the next clause's number, in digits or in words
    ("根据《劳动合同法》第十九条，劳动合同期限三个月以上不满一年的，试用期不得超过2个月。", A19,
     ("二", "一")),
    ("劳动合同期限三个月以上不满一年的，试用期不得超过二个月。", A19, ("二", "一")),
    ("根据《劳动合同法》第四十七条，向其支付经济补偿的年限最高不超过10年。", A47, ("十", "十二")),
    # true to the article: words or digits, and words the article has before several numbers
    ("劳动合同期限3个月以上不满1年的，试用期不得超过1个月。", A19, None),
    ("试用期不得超过二个月。", A19, None),
    ("经济补偿的年限最高不超过１２年。", A47, None),
    ("工作满6个月以上不满一年的，按一年计算。", A47, None),
])
def test_changed_number(sentence, article, change):
    from legalrag.answer.support import changed_number, changes_rule

    assert changed_number(sentence, article) == change
    if change is not None:
        assert changes_rule(sentence, article)


def test_a_copy_with_its_number_changed_in_digits_is_not_supported(scorer):
    """The hole changed_number closes: every n-gram of this sentence is in the article, and
    it scored above the threshold, but the article gives one month for this term, not two."""
    sentence = "根据《劳动合同法》第十九条，劳动合同期限三个月以上不满一年的，试用期不得超过2个月。"
    assert scorer.score(sentence, A19) >= scorer.model.threshold
    assert not scorer.supports(sentence, A19)
    assert scorer.supports(sentence.replace("2个月", "一个月"), A19)


L82 = Article("中华人民共和国劳动合同法", "劳动合同法", "法律", "社会法", (), 82, 0, "第八十二条",
              "用人单位自用工之日起超过一个月不满一年未与劳动者订立书面劳动合同的，应当向劳动者每月"
              "支付二倍的工资。\n用人单位违反本法规定不与劳动者订立无固定期限劳动合同的，自应当订立"
              "无固定期限劳动合同之日起向劳动者每月支付二倍的工资。", "2012-12-28", True,
              "劳动合同法.md", 1)


@pytest.mark.fast
@pytest.mark.parametrize(("sentence", "change"), [
    # a negation left out of the copied words, or added to them
    ("用人单位自用工之日起超过一个月满一年未与劳动者订立书面劳动合同的，应当向劳动者每月支付二倍的工资。",
     ("", "不")),
    ("用人单位自用工之日起超过一个月不满一年与劳动者订立书面劳动合同的，应当向劳动者每月支付二倍的工资。",
     ("", "未")),
    ("用人单位违反本法规定没有不与劳动者订立无固定期限劳动合同的，应当支付二倍的工资。",
     ("没有", "")),
    # the copy as it stands, and one that leaves out a whole stretch: not a negation
    ("用人单位自用工之日起超过一个月不满一年未与劳动者订立书面劳动合同的，应当向劳动者每月支付二倍的工资。",
     None),
    ("用人单位违反本法规定不与劳动者订立无固定期限劳动合同的，向劳动者每月支付二倍的工资。", None),
])
def test_altered_sees_a_negation_added_or_left_out(sentence, change):
    from legalrag.answer.support import altered

    assert altered(sentence, L82) == change


def test_a_copy_without_its_negation_is_not_supported(scorer):
    """Found by hand: 满一年 for the article's 不满一年 scores at the threshold (0.893 to
    0.903 with the embedding backends here, threshold 0.894): only the rule keeps it off."""
    a82 = _article("社会法/劳动合同法(2012-12-28).md", 82)
    sentence = ("根据《劳动合同法》第八十二条，用人单位自用工之日起超过一个月满一年未与劳动者订立"
                "书面劳动合同的，应当向劳动者每月支付二倍的工资。")
    assert scorer.score(sentence, a82) >= scorer.model.threshold - 0.02
    assert not scorer.supports(sentence, a82)
    assert scorer.supports(sentence.replace("一个月满", "一个月不满"), a82)


X264 = Article("中华人民共和国刑法", "刑法", "法律", "刑法", (), 264, 0, "第二百六十四条",
               "盗窃公私财物，数额较大的，或者多次盗窃、入户盗窃、携带凶器盗窃、扒窃的，处三年以下"
               "有期徒刑、拘役或者管制，并处或者单处罚金。", "2020-12-26", True, "刑法.md", 1)
L37 = Article("中华人民共和国劳动合同法", "劳动合同法", "法律", "社会法", (), 37, 0, "第三十七条",
              "劳动者提前三十日以书面形式通知用人单位，可以解除劳动合同。劳动者在试用期内提前三日"
              "通知用人单位，可以解除劳动合同。", "2012-12-28", True, "劳动合同法.md", 1)

M1218 = civil_code(1218, "患者在诊疗活动中受到损害，医疗机构或者其医务人员有过错的，由医疗机构承担"
                   "赔偿责任。")


@pytest.mark.fast
@pytest.mark.parametrize(("sentence", "article", "change"), [
    ("根据《刑法》第二百六十四条，盗窃公私财物，数额较大的，处三年以上有期徒刑、拘役或者管制。",
     X264, ("以上", "以下")),
    ("盗窃公私财物，数额较小的，或者多次盗窃、入户盗窃的，处三年以下有期徒刑。", X264,
     ("较小", "较大")),
    ("盗窃公私财物，数额较大的，处三年以下有期徒刑、拘役并且管制。", X264, ("并且", "或者")),
    ("用人单位提前三十日以书面形式通知劳动者，可以解除劳动合同。", L37, ("用人单位", "劳动者")),
    # parties that share a character (借): the alignment keeps 借 and sees no replacement
    # (the sixth batch's wrong ✓)
    ("根据《民法典》第六百七十三条，出借人未按照约定的借款用途使用借款的，贷款人可以停止发放借款。",
     M673, ("出借人", "借款人")),
    # the patient and the hospital swapped (the ninth batch's one wrong ✓, an everyday
    # question); the hospital named in the asker's word is the same party
    ("根据《民法典》第一千二百一十八条，医院在诊疗活动中受到损害，医疗机构或者其医务人员有过错"
     "的，由医疗机构承担赔偿责任。", M1218, ("医院", "患者")),
    ("患者在诊疗活动中受到损害，医院或者其医务人员有过错的，由医疗机构承担赔偿责任。", M1218,
     None),
    # the copy itself, and words of the same meaning (和 and 及 are both "and")
    ("盗窃公私财物，数额较大的，处三年以下有期徒刑、拘役或者管制，并处或者单处罚金。", X264, None),
    ("劳动者及用人单位", Article("x", "x", "法律", "", (), 1, 0, "第一条", "劳动者和用人单位", "",
                          True, "", 0), None),
    ("劳动者提前三十日以书面形式通知用人单位，就可以解除劳动合同。", L37, None),
])
def test_altered_sees_one_word_swapped_for_its_opposite(sentence, article, change):
    from legalrag.answer.support import altered

    assert altered(sentence, article) == change


M81 = Article("中华人民共和国民事诉讼法", "民事诉讼法", "法律", "诉讼与非诉讼程序法", (), 81, 0,
              "第八十一条", "当事人对鉴定意见有异议或者人民法院认为鉴定人有必要出庭的，"
              "鉴定人应当出庭作证。", "2023-09-01", True, "民事诉讼法.md", 1)
P44 = Article("中华人民共和国行政诉讼法", "行政诉讼法", "法律", "诉讼与非诉讼程序法", (), 44, 0,
              "第四十四条", "对属于人民法院受案范围的行政案件，公民、法人或者其他组织可以先向"
              "行政机关申请复议，对复议决定不服的，再向人民法院提起诉讼。", "2017-06-27", True,
              "行政诉讼法.md", 1)


@pytest.mark.fast
@pytest.mark.parametrize(("sentence", "article", "change"), [
    # an authority where the article has a person, or another kind of authority
    ("根据《民事诉讼法》第八十一条，行政机关对鉴定意见有异议的，鉴定人应当出庭作证。", M81,
     ("行政机关", "当事人")),
    ("当事人对鉴定意见有异议或者人民检察院认为鉴定人有必要出庭的，鉴定人应当出庭作证。", M81,
     ("人民检察院", "人民法院")),
    ("对属于人民法院受案范围的行政案件，公民、法人或者其他组织可以先向人民法院申请复议，对复议"
     "决定不服的，再向人民法院提起诉讼。", P44, ("人民法院", "行政机关")),
    # the same kind of actor in other words, or a kind of the article's person: no change
    ("当事人对鉴定意见有异议或者法院认为鉴定人有必要出庭的，鉴定人应当出庭作证。", M81, None),
    ("原告对鉴定意见有异议或者人民法院认为鉴定人有必要出庭的，鉴定人应当出庭作证。", M81, None),
    ("对属于人民法院受案范围的行政案件，公民、法人或者其他组织可以先向人民政府申请复议，对复议"
     "决定不服的，再向人民法院提起诉讼。", P44, None),
    # a negation after the one word both begin with
    ("对不属于人民法院受案范围的行政案件，公民、法人或者其他组织可以先向行政机关申请复议。", P44,
     ("不", "")),
])
def test_altered_sees_an_actor_of_another_kind(sentence, article, change):
    """Who acts is part of the rule: 当事人 ↔ 行政机关 got ✓ in nine of 66 party swaps of
    bench/perturbed_copies.py (2026-12-05), since the two are no pair of opposites."""
    from legalrag.answer.support import altered

    assert altered(sentence, article) == change


def test_copies_with_one_detail_changed_rarely_get_a_tick(scorer):
    """bench/perturbed_copies.py on 80 articles: the first sentence of each, copied as a
    model copies it and changed in one detail (a number, a modal, a negation, a bound, the
    parties, 或者, a condition left out at the start or in the middle), or two sentences
    spliced; the faithful copies mostly get ✓ and the changed ones almost never. Before
    the rules of 2026-12-05 the changed copies got ✓ in 23.5% of 783 cases (400 articles)."""
    import random
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from perturbed_copies import perturbations, splice

    from legalrag.index.corpus import parse_corpus

    articles = [a for a in parse_corpus(ROOT / "corpus").articles
                if a.in_force and a.level in ("法律", "司法解释")]
    random.Random(1).shuffle(articles)
    faithful = changed = faithful_ticks = changed_ticks = 0
    for a in articles:
        first = a.text.split("。")[0].split("\n")[0]
        if not 12 <= len(first) <= 90:
            continue
        frame = f"根据《{a.law}》{a.label}，"
        faithful += 1
        faithful_ticks += scorer.supports(frame + first + "。", a)
        joined = splice(a.text)
        for text in [*perturbations(first).values(), *([joined] if joined else [])]:
            changed += 1
            changed_ticks += scorer.supports(frame + text + "。", a)
        if faithful == 80:
            break
    assert changed >= 60
    assert faithful_ticks / faithful >= 0.85
    assert changed_ticks / changed <= 0.02, f"{changed_ticks} ✓ of {changed} changed copies"
