"""Does a sentence say something its cited article says? A support score for claims.

A citation being among the sources only proves the article was shown to the model; a ✓
must also mean the sentence is backed by it. 《民法典》第六百三十七条 (试用买卖) cited for a
rule on job probation is a real source and an unsupported claim.

The score uses only what is already loaded, no second model: character n-gram overlap
between the sentence and the article, the longest passage they share (a quotation), the
share of the sentence's words that occur in the article, and the cosine of the two under
the embedding model that built the index. A logistic regression combines them; its
weights and the threshold come from labelled (sentence, cited article) pairs of real
answers, ``data/eval/support_labels.jsonl``, fitted by ``bench/calibrate_support.py`` so
that a ✓ is wrong in at most 5% of held-out pairs (docs/evaluation.md).

    >>> scorer = SupportScorer.default(embed=embedder.encode)         # doctest: +SKIP
    >>> scorer.supports("用人单位拖欠工资的，劳动者可以解除合同。", a38)  # doctest: +SKIP
    True

The check (answer/check.py) calls ``supports`` with the sentence a citation stands in
(``check.sentence_at``) for every citation of a source that is not inside words copied
from that source.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from importlib import resources

import numpy as np

from legalrag.citations import find_citations
from legalrag.numerals import to_chinese
from legalrag.records import Article

Embed = Callable[[list[str]], np.ndarray]  # texts -> L2-normalised rows

FEATURES = ("bigram_recall", "trigram_recall", "longest_shared", "word_recall", "cosine",
            "log_chars")
_MARKER_RE = re.compile(r"[\[［【]\s*(?:来源\s*)?\d{1,3}(?:\s*[,，、]\s*\d{1,3})*\s*[\]］】]")
_CJK_RE = re.compile(r"[\u4e00-\u9fff]")
_NON_CJK_RE = re.compile(r"[^\u4e00-\u9fff]+")
# Words of the answer's frame, not of its claim: they say nothing about support.
_FRAME = ("根据", "依照", "依据", "按照", "规定", "本法", "该法", "法律", "条文", "第", "条",
          "款", "可以", "应当", "如果", "的话", "您", "你", "我们", "需要", "情况", "具体",
          "咨询", "律师", "建议")


# Words that set what a rule allows, requires or forbids. A sentence that copies an article
# but puts one of these classes where the article has another (可以 for 应当) states a
# different rule in the article's own words, which the n-gram features cannot see.
# Forbids is looked up first: 不可 and 不应 hold 可 and 应.
_MODALS = {"forbids": ("不得", "禁止", "不能", "无权", "不可", "不应"),
           "requires": ("应当", "必须", "应", "须"), "permits": ("可以", "有权", "可")}
_NUMERAL_RES = (re.compile(r"[零一二三四五六七八九十百千万两半]"), re.compile(r"[0-9]"))
_ALIGN_RE = re.compile(r"[\u4e00-\u9fff0-9]")
# Numbers a model writes in digits (试用期不得超过2个月) where the article writes them in
# words (一个月): altered compares both in words. Runs of up to three digits only, not part
# of a decimal (1.5倍) or a year (2008年); 两 before a measure word is 二.
_DIGITS_RE = re.compile(r"(?<![0-9.．])[0-9]{1,3}(?![0-9.．])")
_TWO_RE = re.compile(r"两(?=[个年月日天倍人次周])")
_FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
# Words of which one stands where the article has the other: a bound, an order, a degree,
# a connective or a party. 处三年以上有期徒刑 for the article's 三年以下, 原告 for 被告, 并且
# for 或者. A sentence that copies an article and swaps one for the other states another rule.
CONTRASTS = (
    ("以上", "以下"), ("以前", "以后"), ("之前", "之后"), ("较大", "较小"), ("高于", "低于"),
    ("多于", "少于"), ("最高", "最低"), ("从重", "从轻"), ("加重", "减轻"), ("增加", "减少"),
    ("有效", "无效"), ("合法", "非法"), ("有权", "无权"), ("应予", "不予"),
    ("或者", "并且"), ("或者", "而且"), ("或者", "和"), ("或者", "及"),
    ("原告", "被告"), ("出卖人", "买受人"), ("出租人", "承租人"), ("债权人", "债务人"),
    ("发包人", "承包人"), ("委托人", "受托人"), ("贷款人", "借款人"), ("出借人", "借款人"),
    ("抵押权人", "抵押人"), ("质权人", "出质人"), ("用人单位", "劳动者"),
    ("保险人", "投保人", "被保险人"), ("赠与人", "受赠人"), ("承运人", "托运人"),
    ("保管人", "寄存人"), ("甲方", "乙方"), ("买方", "卖方"), ("夫", "妻"),
    # the parties of everyday rules, each side in the article's word and the asker's (医院
    # for 医疗机构 is the same party and no swap)
    ("患者", "医疗机构"), ("患者", "医院"), ("消费者", "经营者"), ("消费者", "商家"),
    ("旅客", "承运人"), ("旅游者", "旅游经营者"), ("业主", "物业服务人"), ("业主", "物业"),
    ("学生", "学校"), ("学生", "教育机构"),
)
# Who acts: a court, a procuratorate, an arbitration body, an administrative organ (the
# government and the police are such organs), a supervisory organ; and the private persons
# a rule addresses. One put where the article has another of a different kind is another
# rule: 行政机关对鉴定意见有异议的 for the article's 当事人对鉴定意见有异议的. Persons against
# persons are left to the pairs above, since one may name a kind of the other (原告 for
# 当事人).
AUTHORITIES = (("人民法院", "法院", "法庭"), ("人民检察院", "检察院", "检察机关"),
               ("仲裁委员会", "仲裁机构", "仲裁庭"),
               ("行政机关", "人民政府", "政府", "公安机关", "主管部门"), ("监察机关", "监察委员会"))
PERSONS = ("当事人", "利害关系人", "第三人", "申请人", "被申请人", "原告", "被告", "上诉人",
           "被上诉人", "公民", "法人", "犯罪嫌疑人", "被告人", "被害人", "劳动者", "用人单位",
           "消费者", "经营者", "监护人", "近亲属")
_AUTHORITY_OF = {w: i for i, group in enumerate(AUTHORITIES) for w in group}


def _word_over(text: str, start: int, end: int, words: tuple[str, ...]) -> str | None:
    """The word of words (longest first) that text has over the span [start, end)."""
    for w in sorted(words, key=len, reverse=True):
        at = text.find(w, max(0, start - len(w) + 1))
        while 0 <= at < end:
            if at + len(w) > start:
                return w
            at = text.find(w, at + 1)
    return None


def _contrast(claim: str, i1: int, i2: int, body: str, j1: int, j2: int
              ) -> tuple[str, str] | None:
    """(the sentence's word, the article's) when a replacement swaps one word of a
    CONTRASTS group for another of the same group."""
    for group in CONTRASTS:
        said, written = _word_over(claim, i1, i2, group), _word_over(body, j1, j2, group)
        if said and written and said != written and not (said in written or written in said):
            return said, written
    actors = (*_AUTHORITY_OF, *PERSONS)
    said, written = _word_over(claim, i1, i2, actors), _word_over(body, j1, j2, actors)
    if said and written and not (said in written or written in said) and \
            _AUTHORITY_OF.get(said, -1) != _AUTHORITY_OF.get(written, -1):
        return said, written  # two kinds of actor, at least one of them an authority
    return None


# A negation (不, 未, 无, 非, 否, 没有) of at most NEGATION_WIDTH characters that the sentence
# adds to or leaves out of words it copies reverses the rule: 超过一个月满一年 for the
# article's 超过一个月不满一年.
_NEGATION_RE = re.compile(r"[不未无非否]|没有")
NEGATION_WIDTH = 2
# An alteration is a replacement of at most this many characters on either side, next to
# at least ALTER_FLANK characters copied from the article.
ALTER_WIDTH, ALTER_FLANK = 4, 3
# dropped_condition: a copy is at least this many characters (and half the claim) long.
COPY_MIN = 8
_CONDITION_ENDS = ("的", "外", "前", "后", "时")
# ... or opening with 除, 在 or 因 (因旅游经营者方面的同一原因造成旅游者人身损害、财产损失，), or
# saying that one of the cases listed must hold (有下列情形之一，被告已经履行……的，).
_CONDITION_OPENS = ("除", "在", "因")
_ONE_OF_RE = re.compile(r"(?:下列|以下)[^，,]{0,8}之一")
_PUT_IN_RE = re.compile(r"可以|有权|应当")
# ... or saying that someone fails to do something (债务人不履行到期债务，债权人可以留置……),
# or that the parties may agree on what follows (出租人、出卖人、承租人可以约定，……)
_FAILS_RE = re.compile(r"[不未](?:履行|支付|按照|依照|依法|能|经|在)|(?:可以|另行)约定$")
# A copy that refers back to the case the clause before it states (当事人就该情形下……, for
# the article's 融资租赁合同无效，当事人就该情形下……) leaves out that case if it leaves out
# the clause, whatever the clause's form.
_BACK_RE = re.compile(r"(?:该|此|这|上述|前述)(?:种|类)?(?:情形|情况)")
_LEAD_RE = re.compile(r"^(根据|依照|依据|按照)")


def _modal(text: str) -> str | None:
    return next((name for name, words in _MODALS.items() if any(w in text for w in words)),
                None)


def _modal_word(text: str) -> str:
    """The modal word in text as _modal finds it (应当 in 营者应当), for the reader's note;
    text itself when it has none."""
    name = _modal(text)
    return next(w for w in _MODALS[name] if w in text) if name else text


def altered(sentence: str, article: Article) -> tuple[str, str] | None:
    """(the sentence's words, the article's words) where the sentence copies the article
    but changes what it allows, requires or forbids (可以 for 应当), a number in it, or
    adds or leaves out a negation (满一年 for 不满一年; one side is then ""); None when it
    does not. Such a sentence is never supported, whatever its score.

    >>> a = Article("中华人民共和国民法典", "民法典", "法律", "", (), 913, 0, "第九百一十三条",
    ...             "保管人发现入库仓储物有变质的，应当催告存货人作出必要的处置。", "", True, "", 0)
    >>> altered("根据《民法典》第九百一十三条，保管人发现入库仓储物有变质的，可以催告存货人。", a)
    ('可以', '应当')
    >>> altered("保管人发现入库仓储物有变质的，必须催告存货人。", a) is None  # same class
    True
    >>> altered("保管人发现入库仓储物没有变质的，应当催告存货人。", a)  # a negation added
    ('没', '')
    """
    claim, body = _comparable(claim_text(sentence)), _comparable(article.text, lead=False)
    ops = SequenceMatcher(None, claim, body, autojunk=False).get_opcodes()

    def copied(k: int) -> bool:
        return 0 <= k < len(ops) and ops[k][0] == "equal" and ops[k][2] - ops[k][1] >= ALTER_FLANK

    def at_start(k: int) -> bool:
        """Nothing before op k, or only words that both the sentence and the article begin
        with (the 对 of 对不属于…, the article's 对属于…)."""
        return k == 0 or (k == 1 and ops[0][0] == "equal" and ops[0][1] == ops[0][3] == 0)

    def flanked(k: int) -> bool:
        """Copied words on both sides, or on one side and the sentence's start or end on
        the other (不同行政区域 copied as 同行政区域)."""
        return (copied(k - 1) or at_start(k)) and (copied(k + 1) or k == len(ops) - 1) \
            and (copied(k - 1) or copied(k + 1))

    for k, (tag, i1, i2, j1, j2) in enumerate(ops):
        # a negation added (不满 for 满) or left out (满 for 不满) inside copied words
        if tag in ("delete", "insert") and max(i2 - i1, j2 - j1) <= NEGATION_WIDTH \
                and flanked(k) \
                and (_NEGATION_RE.search(claim[i1:i2] + body[j1:j2])
                     or claim[i1:i2 + 1].endswith("没有") or body[j1:j2 + 1].endswith("没有")):
            return claim[i1:i2], body[j1:j2]
        if tag != "replace":
            continue
        if i2 - i1 > ALTER_WIDTH:
            # words of the sentence's own put in before a changed modal (未按照约定提供的，
            # 经营者可以按照… for the article's …的，应当按照…): the modal next to the copy
            said = claim[i2 - ALTER_WIDTH:i2]
            written = body[j1:j2]
            if copied(k + 1) and j2 - j1 <= ALTER_WIDTH and _modal_at(said, True) and \
                    _modal_at(written, True) and _modal(said) != _modal(written):
                return _modal_word(said), _modal_word(written)
            continue
        said = claim[i1:i2]
        # The article's words in that place: next to the copied text on either side (the
        # sentence may also leave out words of the article just before or after them).
        places = ([(body[max(j1, j2 - ALTER_WIDTH):j2], True)] if copied(k + 1) else []) + \
                 ([(body[j1:min(j2, j1 + ALTER_WIDTH)], False)] if copied(k - 1) else [])
        if j2 - j1 <= ALTER_WIDTH and (copied(k - 1) or copied(k + 1)) and \
                (contrast := _contrast(claim, i1, i2, body, j1, j2)):
            return contrast
        for written, at_end in places:
            modal_said, modal_written = _modal(said), _modal(written)
            if modal_said and modal_written and modal_said != modal_written and (
                    j2 - j1 <= ALTER_WIDTH or _modal_at(written, at_end)):
                # the modal words alone: the window may cut the word before them (营者应当)
                return _modal_word(said), _modal_word(written)
            # a number changed, written the same way (三十日 for 三十日 in digits is no change)
            if j2 - j1 <= ALTER_WIDTH and any(
                    r.search(said) and r.search(written) for r in _NUMERAL_RES):
                return said, written
    return _swapped_across(claim, body, ops)


def _swapped_across(claim: str, body: str, ops: list[tuple[str, int, int, int, int]]
                    ) -> tuple[str, str] | None:
    """A party swapped for its counterpart where the two share a character, which the
    alignment keeps as copied: 出借人 for the article's 借款人 aligns as 出 left out, 借
    kept, 款 put in. Changes no wider than ALTER_WIDTH on either side, joined across
    copied runs shorter than ALTER_FLANK, between copied runs of ALTER_FLANK (or the
    sentence's start or end), are read as one replacement."""
    k = 0
    while k < len(ops):
        if ops[k][0] == "equal":
            k += 1
            continue
        end = k  # the last op of the window: changes and the short copies between them
        while end + 2 < len(ops) and ops[end + 1][0] == "equal" and \
                ops[end + 1][2] - ops[end + 1][1] < ALTER_FLANK and ops[end + 2][0] != "equal":
            end += 2
        i1, j1, i2, j2 = ops[k][1], ops[k][3], ops[end][2], ops[end][4]
        before = k == 0 or ops[k - 1][2] - ops[k - 1][1] >= ALTER_FLANK
        after = end == len(ops) - 1 or ops[end + 1][2] - ops[end + 1][1] >= ALTER_FLANK
        if end > k and before and after and (k > 0 or end < len(ops) - 1) and \
                max(i2 - i1, j2 - j1) <= ALTER_WIDTH and \
                (contrast := _contrast(claim, i1, i2, body, j1, j2)):
            return contrast
        k = end + 1
    return None


_NUMBER_RE = re.compile(r"[零〇一二三四五六七八九十百千万]+")
# changed_number: the words before a number must be at least this long to be the article's.
NUMBER_CONTEXT = 4


def changed_number(sentence: str, article: Article) -> tuple[str, str] | None:
    """(the sentence's number, the article's) where the sentence states a number right
    after words it copies from the article, and the article, wherever it has those words,
    has another number after them; None when it does not.

    The words are the longest run (at least NUMBER_CONTEXT characters) before the number
    that the article also has, so a copy that joins one clause's condition to another
    clause's number is caught: 《劳动合同法》第十九条 has 试用期不得超过 three times (一个月,
    二个月, 六个月), but 劳动合同期限三个月以上不满一年的，试用期不得超过 only before 一个月.
    Both texts are compared with digits written in words (numbers_in_words).

    >>> a = Article("中华人民共和国劳动合同法", "劳动合同法", "法律", "", (), 19, 0, "第十九条",
    ...             "劳动合同期限三个月以上不满一年的，试用期不得超过一个月；劳动合同期限一年以上"
    ...             "不满三年的，试用期不得超过二个月。", "", True, "", 0)
    >>> changed_number("劳动合同期限三个月以上不满一年的，试用期不得超过2个月。", a)
    ('二', '一')
    >>> changed_number("试用期不得超过二个月。", a) is None
    True
    """
    claim, body = _comparable(claim_text(sentence)), _comparable(article.text, lead=False)
    for m in _NUMBER_RE.finditer(claim):
        before = claim[:m.start()]
        k = len(before)
        while k >= NUMBER_CONTEXT and before[-k:] not in body:
            k -= 1
        if k < NUMBER_CONTEXT:
            continue
        context = before[-k:]
        written = set()
        for at in re.finditer(re.escape(context), body):
            run = _NUMBER_RE.match(body, at.end())
            if run is None:
                break  # the article has these words without a number after them somewhere
            written.add(run.group())
        else:
            if written and m.group() not in written:
                return m.group(), sorted(written)[0]
    return None


# A list item's number, the article's （三） or a model's "3." at the start of a line: a
# copy that skips or renumbers items (……（七）) changes no rule.
_ENUMERATOR_RE = re.compile(r"[（(][一二三四五六七八九十]{1,3}[）)]|^\s*[0-9]{1,2}[.．、]",
                            re.MULTILINE)


def _comparable(text: str, lead: bool = True) -> str:
    """text as altered and changed_number compare it: list numbers out, digits in words,
    Chinese characters and digits only, and (lead) a leading 根据/依照 left out."""
    out = "".join(_ALIGN_RE.findall(numbers_in_words(_ENUMERATOR_RE.sub("", text))))
    return _LEAD_RE.sub("", out) if lead else out


def numbers_in_words(text: str) -> str:
    """text with its short digit numbers written in Chinese numerals, as statutes write them.

    >>> numbers_in_words("试用期不得超过2个月，拘留5日以上15日以下，1.5倍，2008年，两个月")
    '试用期不得超过二个月，拘留五日以上十五日以下，1.5倍，2008年，二个月'
    """
    text = _DIGITS_RE.sub(lambda m: to_chinese(int(m.group())),
                          text.translate(_FULL_WIDTH_DIGITS))
    return _TWO_RE.sub("二", text)


def dropped_condition(sentence: str, article: Article) -> str | None:
    """The condition the sentence leaves out when it copies the rule that follows it in
    the article as if it held without it; None when it does not.

    The sentence must begin with the copy (after 根据…, with no condition of its own before
    it), and the article's clause run before the copied words, back to the last 。；： or
    line break, must state a condition (a clause ending in 的/外/前/后/时, opening with 除,
    在 or 因, or naming one of a list: 有下列情形之一) that the sentence does not repeat.
    没有约定保证份额的，债权人可以请求任何一个保证人…… copied as 债权人可以请求任何一个
    保证人…… states a rule the article does not.

    >>> a = Article("中华人民共和国保险法", "保险法", "法律", "", (), 62, 0, "第六十二条",
    ...             "除被保险人的家庭成员故意造成保险事故外，保险人不得对被保险人的家庭成员"
    ...             "行使代位请求赔偿的权利。", "", True, "", 0)
    >>> dropped_condition("根据《保险法》第六十二条，保险人不得对被保险人的家庭成员行使代位"
    ...                   "请求赔偿的权利。", a)
    '除被保险人的家庭成员故意造成保险事故外'
    >>> dropped_condition("家庭成员故意造成保险事故的，保险人可以向其追偿。", a) is None
    True
    """
    claim = _LEAD_RE.sub("", "".join(_ALIGN_RE.findall(claim_text(sentence))))
    if claim.startswith("但"):
        return None  # an exception, to a rule stated before it
    text = article.text
    where = [k for k, ch in enumerate(text) if _ALIGN_RE.match(ch)]
    body = "".join(text[k] for k in where)
    m = SequenceMatcher(None, claim, body, autojunk=False).find_longest_match()
    if m.size < COPY_MIN or m.size < len(claim) / 2:
        return None  # not a copy
    b = m.b
    if m.a > 0:
        # the copy may begin earlier, with a modal word put in (旅游者可以选择请求…… for the
        # article's 旅游者选择请求……), or with the subject named otherwise (留置权人可以留置……
        # for 债权人可以留置……); otherwise the sentence states its own condition first (a
        # word or two of its own, 对 or 若, are let pass)
        bare = _PUT_IN_RE.sub("", claim[:m.a])
        if bare != claim[:m.a] and body[:m.b].endswith(bare):
            b = m.b - len(bare)
        elif (subject := _renamed_subject(sentence, m.a, text, where, m.b)) is not None:
            b = subject
        elif m.a > 2:
            return None
    start = where[b]
    run = text[max(text.rfind(c, 0, start) for c in "。；：;:\n") + 1:start].rstrip()
    if run and run[-1] not in "，," and b == m.b and m.a == 0:
        # the copy begins inside a clause and goes on past it: the words of the clause
        # left out may name whom the condition is about (物业使用人违反本条例和管理规约的
        # 规定，有关业主应当承担连带责任 holds for the users' breaches, not anyone's), or
        # narrow what the copy begins with (实名制客运合同的旅客丢失客票的，可以请求…
        # holds for tickets of a real-name contract, not every passenger's)
        left = run[max(run.rfind(c) for c in "，,") + 1:]
        clause = text[start:].split("，", 1)[0]
        if (_names_actor(left) or _qualifies(left)) and \
                "".join(_ALIGN_RE.findall(left)) not in claim and \
                not re.search(r"[。；;：:\n]", clause) and \
                len(_ALIGN_RE.findall(clause)) < m.size:
            return left
        return None
    if not run or run[-1] not in "，,":
        return None
    before = run[:-1]
    clauses = re.split(r"[，,]", before)
    if not any(_is_condition(c) for c in clauses) and \
            not _BACK_RE.search(text[start:].split("，", 1)[0]):
        return None
    if "".join(_ALIGN_RE.findall(before)) in claim:
        return None
    return before


def _said(clause: str, said: set[str]) -> bool:
    """Whether at least LEAD_SAID of the clause's character bigrams are among said (the
    claim's): the sentence states the clause, in its own order or words (dropped_lead)."""
    grams = _grams("".join(_ALIGN_RE.findall(clause)), 2)
    return bool(grams) and len(grams & said) / len(grams) >= LEAD_SAID


def _is_condition(clause: str) -> bool:
    """Whether an article's clause states a condition of the rule after it."""
    return clause.endswith(_CONDITION_ENDS) or clause.startswith(_CONDITION_OPENS) or \
        _ONE_OF_RE.search(clause) is not None or _FAILS_RE.search(clause) is not None


# skipped_condition: the copied runs on either side of the skipped clauses are at least
# this long.
SKIP_FLANK = 4


def skipped_condition(sentence: str, article: Article) -> str | None:
    """The condition the sentence skips in the middle of a copy: whole clauses of one
    sentence of the article, between two copied runs, at least one of them a condition
    (as dropped_condition reads one); None when it skips none. Clauses that open with 或
    are an alternative: the sentence keeps a case in which the rule holds.

    >>> a = Article("中华人民共和国民法典", "民法典", "法律", "", (), 950, 0, "第九百五十条",
    ...             "物业服务合同终止后，在新物业服务人接管之前，原物业服务人应当继续处理物业服务"
    ...             "事项。", "", True, "", 0)
    >>> skipped_condition("根据《民法典》第九百五十条，物业服务合同终止后，原物业服务人应当继续处理"
    ...                   "物业服务事项。", a)
    '在新物业服务人接管之前'
    >>> skipped_condition("物业服务合同终止后，在新物业服务人接管之前，原物业服务人应当继续处理。",
    ...                   a) is None
    True
    """
    claim = _LEAD_RE.sub("", "".join(_ALIGN_RE.findall(claim_text(sentence))))
    # the article read as the sentence is: citations in it (除存在民法典第一百四十六条……
    # 规定的情形外) are left out of both
    text = claim_text(article.text)
    where = [k for k, ch in enumerate(text) if _ALIGN_RE.match(ch)]
    body = "".join(text[k] for k in where)
    ops = SequenceMatcher(None, claim, body, autojunk=False).get_opcodes()
    runs = [op for op in ops if op[0] == "equal" and op[2] - op[1] >= SKIP_FLANK]
    if sum(op[2] - op[1] for op in runs) < max(COPY_MIN, len(claim) / 2):
        return None  # not a copy
    for (_, _, i2, _, j2), (_, i1, _, j1, _) in zip(runs, runs[1:], strict=False):
        if i1 - i2 > 2 or j1 - j2 < SKIP_FLANK:
            continue  # nothing of the article's skipped, or words of the sentence's own
        gap = text[where[j2 - 1] + 1:where[j1]]
        skipped = gap.strip("，, ")
        if re.search(r"[。：:\n]", skipped):
            continue  # not within one sentence of the article (； parts one)
        if not gap.lstrip().startswith(("，", ",")) or not gap.rstrip().endswith(("，", ",")):
            if _cut_from_condition(text, where[j2 - 1] + 1, where[j1], skipped):
                return skipped
            continue  # not whole clauses
        if skipped.startswith("或"):
            continue  # one alternative left out: what the sentence keeps still suffices
        if any(_is_condition(c) for c in re.split(r"[，,；;]", skipped)):
            return skipped
    return None


def _cut_from_condition(text: str, start: int, end: int, skipped: str) -> bool:
    """Whether text[start:end], left out of a copy, is words of two clauses (the end of one
    and the start of the next) within the condition its sentence opens with, the clauses
    up to its last …的，: 承租人已经支付大部分租金，但是无力支付剩余租金 copied as
    承租人无力支付剩余租金 drops half of when the lessee may claim. Not an alternative
    (a clause opening with 或)."""
    if not re.search(r"[，,]", skipped) or re.search(r"[；;]|[，,]\s*或", skipped):
        return False
    head = max(text.rfind(c, 0, start) for c in "。；;\n") + 1
    sentence_end = min((k for k in (text.find(c, end) for c in "。；;\n") if k >= 0),
                       default=len(text))
    rule = max(text.rfind("的，", head, sentence_end), text.rfind("的,", head, sentence_end))
    return rule >= end


# A subject renamed (留置权人 for 债权人) or an actor left out is this short at most.
SUBJECT_MAX = 6
_ACTOR_END_RE = re.compile(r"(?:人|者|单位|机关|机构|组织|企业|部门)$")


def _names_actor(words: str) -> bool:
    """Whether words (a clause's start, at most SUBJECT_MAX characters) end with who acts:
    物业使用人, 用人单位, 人民法院; not 法人的, which only says whose 法定代表人 acts."""
    words = "".join(_ALIGN_RE.findall(words))
    return 0 < len(words) <= SUBJECT_MAX and (
        bool(_ACTOR_END_RE.search(words)) or words.endswith((*PERSONS, *_AUTHORITY_OF)))


# _qualifies: a qualifier has at least this many characters, 的 included (not 其的).
QUALIFIER_MIN = 3
_NAMED_AS_RE = re.compile(r"所(?:称|指|说)的$")


def _qualifies(words: str) -> bool:
    """Whether words (a clause's start) are a qualifier of the noun after them, ending in
    的 (实名制客运合同的, 依法成立的): left out, the rule holds for more than the article says.
    Not an actor's 的 (法人的法定代表人): whose officer it is goes without saying; nor the
    words that open a definition (本法所称的技术措施，是指…)."""
    words = "".join(_ALIGN_RE.findall(words))
    return len(words) >= QUALIFIER_MIN and words.endswith("的") and \
        not _names_actor(words[:-1]) and not _NAMED_AS_RE.search(words)


def _renamed_subject(sentence: str, own: int, text: str, where: list[int], copy: int
                     ) -> int | None:
    """Where (in the article's aligned characters) the article's clause holding the copy
    begins, when the sentence's own words before the copy (own characters) and the
    article's before it in that clause are both one short subject, the sentence's named
    otherwise (留置权人可以留置…… for the article's 债务人不履行到期债务，债权人可以留置……);
    None when they are not."""
    claim = "".join(_ALIGN_RE.findall(claim_text(sentence)))
    lead = len(claim) - len(_LEAD_RE.sub("", claim))
    said = claim_text(sentence)
    at = [k for k, ch in enumerate(said) if _ALIGN_RE.match(ch)]
    # the copy may begin with the subject's last characters (留置权人可以…, 债权人可以…):
    # both subjects run to the modal word the copy begins with
    shared = re.match(r"^.{0,2}?(?=可以|有权|应当|不得)", claim[lead + own:])
    more = len(shared.group()) if shared else 0
    mine = said[at[lead]:at[lead + own + more - 1] + 1]
    start = where[copy + more]
    head = max(text.rfind(c, 0, start) for c in "，,。；：;:\n") + 1
    theirs = text[head:start]
    if re.search(r"[，,；;：:、]", mine) or not _names_actor(_PUT_IN_RE.sub("", mine)) or \
            not _names_actor(_PUT_IN_RE.sub("", theirs)):
        return None
    return copy + more - len(_ALIGN_RE.findall(theirs))


# dropped_lead: a clause of the lead that the claim repeats less than this share of
# (its character bigrams) is not stated by the claim.
LEAD_SAID = 0.5
_LIST_WORD_RE = re.compile(r"下列|以下")
# The words that announce a list: 有下列情形之一的, 下列事项, 按照以下规定.
_OWN_RULE_RE = re.compile(r"的[，,]")
_ANNOUNCE_RE = re.compile(r"(?:具有|有)?(?:下列|以下)[^，,、；;]{0,4}?(?:之一)?(?:的|：|:)?")


def dropped_lead(sentence: str, article: Article) -> str | None:
    """The condition the sentence leaves out when it copies an item of one of the article's
    lists as a rule without what the list's lead says first; None when it does not.

    The copy (at least COPY_MIN characters and half the claim) must lie in an item line
    ((一)…), with nothing of the sentence's own before it but the item's words (a word
    put in aside). The lead is the line ending in ： above the items; each of its clauses
    but the one that announces the list (按照下列情形分别处理, 有下列情形之一的) must be said by
    the sentence. 动产抵押合同订立后未办理抵押登记，动产抵押权的效力按照下列情形分别处理：
    (一)抵押人转让抵押财产，受让人占有抵押财产后，抵押权人向受让人请求行使抵押权的，
    人民法院不予支持 holds for unregistered mortgages only.

    >>> a = Article("担保制度解释", "担保制度解释", "司法解释", "", (), 54, 0, "第五十四条",
    ...             "动产抵押合同订立后未办理抵押登记，动产抵押权的效力按照下列情形分别处理："
    ...             "\\n（一）抵押人转让抵押财产，受让人占有抵押财产后，抵押权人向受让人请求"
    ...             "行使抵押权的，人民法院不予支持；", "", True, "", 0)
    >>> dropped_lead("抵押人转让抵押财产后，受让人占有抵押财产后，抵押权人向受让人请求行使"
    ...              "抵押权的，人民法院不予支持。", a)
    '动产抵押合同订立后未办理抵押登记'
    >>> dropped_lead("动产抵押合同订立后未办理抵押登记，抵押人转让抵押财产，受让人占有抵押财产"
    ...              "后，抵押权人向受让人请求行使抵押权的，人民法院不予支持。", a) is None
    True
    """
    if _ENUMERATOR_RE.match(sentence.lstrip()):
        return None  # an item of the answer's own list, under the answer's own lead
    claim = _LEAD_RE.sub("", "".join(_ALIGN_RE.findall(claim_text(sentence))))
    if claim.startswith("但"):
        return None  # an exception, to a rule stated before it
    text = article.text
    where = [k for k, ch in enumerate(text) if _ALIGN_RE.match(ch)]
    body = "".join(text[k] for k in where)
    m = SequenceMatcher(None, claim, body, autojunk=False).find_longest_match()
    if m.size < COPY_MIN or m.size < len(claim) / 2:
        return None
    line = text.rfind("\n", 0, where[m.b]) + 1
    item = _ITEM_START_RE.match(text, line)
    if item is None:
        return None
    own = claim[:m.a]  # the sentence's words before the copy: the item's own, if any
    mine = "".join(_ALIGN_RE.findall(text[item.end():where[m.b]]))
    if own and SequenceMatcher(None, own, mine, autojunk=False).ratio() < 0.8:
        return None
    top = line
    while top > 0:  # up over the list's items to its lead
        above = text.rfind("\n", 0, top - 1) + 1
        if not _ITEM_START_RE.match(text, above):
            break
        top = above
    lead = text[text.rfind("\n", 0, top - 1) + 1:top].strip() if top > 0 else ""
    if not lead.endswith(("：", ":")):
        return None
    lead = lead[max(lead.rfind(c) for c in "。；;") + 1:-1]
    own_line = text[line:].split("\n", 1)[0]
    said = _grams(claim, 2)
    for clause in re.split(r"[，,]", lead):
        if _LIST_WORD_RE.search(clause):
            # the clause that announces the list is no condition, unless it also states
            # the rule and the items are only what it applies to (下列事项可以设定行政许可：
            # (一)……需要按照法定条件予以批准的事项), with no rule of their own (……的，支付……)
            rule = _ANNOUNCE_RE.sub("", clause)
            if _modal(rule) and not _said(rule, said) and not _OWN_RULE_RE.search(own_line):
                return clause
        elif not _said(clause, said) and _grams("".join(_ALIGN_RE.findall(clause)), 2):
            return clause
    return None


# quotes_clauses: a quotation this short is a phrase (自然人享有), not a rule.
QUOTE_MIN_HAN = 6
# The words a model swaps in a copied list's lead (有以下情形之一的 for 有下列情形之一的).
_LIST_LEAD_SWAPS = (("以下", "下列"),)


def quotes_clauses(sentence: str, article: Article) -> bool:
    """Whether the sentence's claim is the article's own words, whole clauses that start
    one of its sentences: it begins where the article (or a sentence, or a line of it)
    begins and ends where a clause ends. Such a sentence says what the article says, however
    short; its score can miss it (自然人享有身体权, eight characters of 《民法典》第一千零三条,
    scores low for its length). A copy that starts inside a sentence (试用期不得超过六个月 out
    of 三年以上固定期限……的劳动合同，试用期不得超过六个月) leaves out what came before it and is
    left to the score; one that changes the rule is caught by changes_rule first.

    >>> a = Article("中华人民共和国民法典", "民法典", "法律", "", (), 1003, 0, "第一千零三条",
    ...             "自然人享有身体权。自然人的身体完整和行动自由受法律保护。", "", True, "", 0)
    >>> quotes_clauses("根据《民法典》第一千零三条，自然人享有身体权。", a)
    True
    >>> quotes_clauses("身体完整和行动自由受法律保护。", a)  # starts inside a sentence
    False
    """
    claims = {_LEAD_RE.sub("", "".join(_ALIGN_RE.findall(numbers_in_words(c))))
              for c in (claim_text(sentence), _after_lead_citation(sentence))}
    claims = {c for c in claims if len(_CJK_RE.findall(c)) >= QUOTE_MIN_HAN}
    if not claims:
        return False
    return any(_quotes_in(claims, numbers_in_words(t))
               for t in {article.text, court_grants(article.text)})


# A judicial interpretation grants a claim as 旅游者请求旅游经营者退还……费用的，人民法院应予
# 支持; an answer says the same as 旅游者可以请求旅游经营者退还……费用.
_GRANTED_RE = re.compile(r"(请求|要求)([^。；;\n]*?)的，人民法院应(?:予|当予以)支持")


def court_grants(text: str) -> str:
    """text with every claim the court is to grant (X请求Y的，人民法院应予支持) written as the
    right it gives (X可以请求Y).

    >>> court_grants("旅游者请求旅游经营者退还费用的，人民法院应予支持。另有约定的除外。")
    '旅游者可以请求旅游经营者退还费用。另有约定的除外。'
    """
    return _GRANTED_RE.sub(r"可以\1\2", text)


def _quotes_in(claims: set[str], text: str) -> bool:
    """Whether one of the claims (aligned characters) is whole clauses of text from the
    start of one of its sentences (quotes_clauses)."""
    where = [k for k, ch in enumerate(text) if _ALIGN_RE.match(ch)]
    body = "".join(text[k] for k in where)
    variants = {v for claim in claims
                for v in (claim, *(claim.replace(a, b) for a, b in _LIST_LEAD_SWAPS))}
    for variant in variants:
        i = body.find(variant)
        while i >= 0:
            before = text[:where[i]].rstrip()
            after = text[where[i + len(variant) - 1] + 1:].lstrip()
            if (not before or before[-1] in "。；;：:\n") and \
                    (not after or after[0] in "，,。；;：:、"):
                return True
            i = body.find(variant, i + 1)
    return False


def _after_lead_citation(sentence: str) -> str:
    """The sentence without the citation it opens with (根据《民法典》第七百三十条，) and its
    markers, other citations kept: a copy of an article that itself refers to another
    (依据本法第五百一十条的规定…) keeps those words, as the article has them.

    >>> _after_lead_citation("根据《民法典》第七百三十条，依据本法第五百一十条的规定[1]。")
    '，依据本法第五百一十条的规定。'
    """
    refs = find_citations(sentence)
    out = sentence
    if refs and _LEAD_RE.sub("", out[:refs[0].end - len(refs[0].raw)].strip()) == "":
        out = out[refs[0].end:]
    return _MARKER_RE.sub("", out)


_PROVISO_START_RE = re.compile(r"[，,；;]\s*(但是|但)")
_PROVISO_WORDS_RE = re.compile(r"除外|另有约定|另有规定|从其约定")
_QUALIFIED_RE = re.compile(r"但|除外|另有|例外|从其约定")
PROVISO_MAX = 80  # a following sentence longer than this is not read as the rule's proviso


def omitted_proviso(sentence: str, article: Article) -> str | None:
    """The proviso the sentence leaves out when it copies a rule that the article goes on
    to qualify (；但是，……除外, or 另有约定的，从其约定 in the next sentence); None when it
    does not. Such a sentence keeps its ✓: the calibration reviewers called these copies
    supported and a later batch's did not (docs/evaluation.md, "A fourth batch"). The
    check shows the proviso beside the ✓ instead (CheckedCitation.proviso).

    >>> a = Article("中华人民共和国民法典", "民法典", "法律", "", (), 1245, 0, "第一千二百四十五条",
    ...             "饲养的动物造成他人损害的，动物饲养人或者管理人应当承担侵权责任；但是，能够证明"
    ...             "损害是因被侵权人故意或者重大过失造成的，可以不承担或者减轻责任。",
    ...             "", True, "", 0)
    >>> omitted_proviso("根据《民法典》第一千二百四十五条，饲养的动物造成他人损害的，动物饲养人"
    ...                 "或者管理人应当承担侵权责任。", a)
    '但是，能够证明损害是因被侵权人故意或者重大过失造成的，可以不承担或者减轻责任'
    >>> omitted_proviso("动物饲养人应当承担侵权责任，但被侵权人故意的可以减轻。", a) is None
    True
    """
    claim = _LEAD_RE.sub("", "".join(_ALIGN_RE.findall(claim_text(sentence))))
    if _QUALIFIED_RE.search(claim):
        return None  # the sentence states an exception of its own
    text = article.text
    where = [k for k, ch in enumerate(text) if _ALIGN_RE.match(ch)]
    body = "".join(text[k] for k in where)
    m = SequenceMatcher(None, claim, body, autojunk=False).find_longest_match()
    if m.size < COPY_MIN or m.size < len(claim) / 2:
        return None  # not a copy of the article
    end = where[m.b + m.size - 1] + 1
    stop = min((k for k in (text.find("。", end), text.find("\n", end)) if k >= 0),
               default=len(text))
    rest = text[end:stop]
    if (found := _PROVISO_START_RE.search(rest)) is not None:
        return rest[found.start(1):].strip()
    if _PROVISO_WORDS_RE.search(rest):
        return rest.lstrip("，,；; ").strip()
    if stop < len(text) and text[stop] == "。":
        following = text[stop + 1:].split("\n", 1)[0].split("。", 1)[0]
        # 但是，法律另有规定的，依照其规定 and 入伙协议另有约定的，从其约定 qualify the rule
        # before them; a sentence with a 但是 inside (设立居住权的住宅不得出租，但是…除外) is
        # another rule with its own proviso.
        following = following.strip()
        if len(following) <= PROVISO_MAX and (following.startswith("但") or (
                _PROVISO_WORDS_RE.search(following) and "但" not in following)):
            return following
    return None


# spliced: each part must be at least this many characters of the article (commas counted).
SPLICE_MIN = 6
_CLAUSE_MARKS = str.maketrans({",": "，", "、": "，", "：": "，", ":": "，"})


_ITEM_START_RE = re.compile(r"\s*[（(][一二三四五六七八九十]{1,3}[）)]")


def _with_commas(text: str) -> str:
    """Chinese characters and digits (numbers in words, list numbers out) with every clause
    mark as one ，: what spliced compares."""
    text = numbers_in_words(_ENUMERATOR_RE.sub("", text)).translate(_CLAUSE_MARKS)
    return re.sub("，+", "，", "".join(re.findall(r"[\u4e00-\u9fff0-9，]", text)))


def spliced(sentence: str, article: Article) -> tuple[str, str] | None:
    """(the end of the first part, the start of the second) where the sentence joins the
    start of one sentence of the article to the rest of another, inside a clause; None
    when it does not.

    《民法典》第一千二百五十八条 gives the 施工人 one defence (已经设置明显标志和采取安全措施)
    and the 管理人 of a manhole another (尽到管理职责). 窨井等地下设施造成他人损害，管理人不能
    证明已经设置明显标志和采取安全措施的，应当承担侵权责任 is made of the article's words, but
    gives the 管理人 the 施工人's defence. Parts joined at a clause mark (……的，应当……),
    whole sentences one after the other, and a list's lead with one of its items in the
    place of its 下列… (返还因拒绝……被增收的费用 for 返还下列费用) are not caught.

    >>> a = Article("中华人民共和国民法典", "民法典", "法律", "", (), 1258, 0, "第一千二百五十八条",
    ...             "挖掘地下设施造成他人损害，施工人不能证明已经设置明显标志的，应当承担责任。\\n"
    ...             "窨井等地下设施造成他人损害，管理人不能证明尽到管理职责的，应当承担责任。",
    ...             "", True, "", 0)
    >>> spliced("窨井等地下设施造成他人损害，管理人不能证明已经设置明显标志的，应当承担责任。", a)
    ('管理人不能证明', '已经设置明显标志的')
    >>> spliced("窨井等地下设施造成他人损害，管理人不能证明尽到管理职责的，应当承担责任。", a)
    """
    claim = re.sub(r"^(根据|依照|依据|按照)?，?", "", _with_commas(claim_text(sentence)))
    pieces_of = [(p, t) for t in re.split(r"[。；;\n]", article.text)
                 if (p := _with_commas(t).strip("，"))]
    parts = [p for p, _ in pieces_of]
    # the article's list items ((一)…), and the leads that announce a list (返还下列费用的)
    items = {n for n, (_, t) in enumerate(pieces_of) if _ITEM_START_RE.match(t)}
    leads = {n for n, p in enumerate(parts) if "下列" in p or "以下" in p}
    pieces = []  # the claim cut, left to right, into the longest runs found in the article
    i = 0
    while i < len(claim):
        k = i + 1
        while k <= len(claim) and any(claim[i:k] in p for p in parts):
            k += 1
        if k - 1 - i >= SPLICE_MIN:
            pieces.append((i, k - 1))
            i = k - 1
        else:
            i += 1
    for (a1, a2), (b1, b2) in zip(pieces, pieces[1:], strict=False):
        first, second = claim[a1:a2], claim[b1:b2]
        if a2 != b1 or first.endswith("，") or second.startswith("，"):
            continue  # the model's own words between them, or joined where a clause ends
        # a clause mark the piece starts with belongs to no sentence in particular
        homes1 = {n for n, p in enumerate(parts) if first.lstrip("，") in p}
        homes2 = {n for n, p in enumerate(parts) if second in p}
        if homes1 & homes2:
            continue
        if any(parts[n].endswith(first) for n in homes1) and \
                any(parts[n].startswith(second) for n in homes2):
            continue  # whole sentences, one after the other
        if any(first + w in parts[n] for n in homes1 & leads for w in ("下列", "以下")) and \
                any(parts[n].startswith(second) for n in homes2 & items):
            continue  # an item put in the place of its lead's 下列…: the list read out
        return first[first.rfind("，") + 1:], second.split("，")[0]
    return None


def copy_change(sentence: str, article: Article) -> tuple[str, str] | None:
    """(the sentence's words, the article's) where the sentence copies the article with a
    word changed (altered, changed_number); None when it does not. Unlike a dropped
    condition, such a change makes the copy itself untrue to the article."""
    return altered(sentence, article) or changed_number(sentence, article)


_DEFINES_RE = re.compile(r"^(.{2,12}?)(?:是指|指的是|就是)$")
# defined_otherwise: a term the article names has at least this share of its character
# bigrams in the article.
TERM_SAID = 0.5


def defined_otherwise(sentence: str, article: Article) -> str | None:
    """The term the sentence defines as a copy of the article (X是指……) when the article
    does not name it; None when it does not. 红旗规则是指网络服务提供者接到权利人的通知书后，
    应当立即删除…… copies the notice-and-takedown rule word for word, and says it is
    another rule.

    >>> a = Article("信息网络传播权保护条例", "信息网络传播权保护条例", "行政法规", "", (), 15, 0,
    ...             "第十五条", "网络服务提供者接到权利人的通知书后，应当立即删除涉嫌侵权的作品。",
    ...             "", True, "", 0)
    >>> defined_otherwise("红旗规则是指网络服务提供者接到权利人的通知书后，应当立即删除涉嫌侵权的"
    ...                   "作品。", a)
    '红旗规则'
    >>> defined_otherwise("通知删除是指网络服务提供者接到权利人的通知书后，应当立即删除涉嫌侵权的"
    ...                   "作品。", a) is None
    True
    """
    claim = _LEAD_RE.sub("", "".join(_ALIGN_RE.findall(claim_text(sentence))))
    body = "".join(_ALIGN_RE.findall(article.text))
    m = SequenceMatcher(None, claim, body, autojunk=False).find_longest_match()
    if m.size < COPY_MIN or m.size < len(claim) / 2:
        return None  # not a copy
    defines = _DEFINES_RE.match(claim[:m.a])
    if defines is None:
        return None
    term = defines.group(1)
    grams = _grams(term, 2)
    if not grams or len(grams & _grams(body, 2)) / len(grams) >= TERM_SAID:
        return None
    return term


def left_out(sentence: str, article: Article) -> str | None:
    """The condition or list lead a copy of the article leaves out (dropped_condition,
    skipped_condition, dropped_lead); None when it leaves out none. Like copy_change it
    needs no scorer: the copy states the article's rule as holding where it does not."""
    return dropped_condition(sentence, article) or skipped_condition(sentence, article) or \
        dropped_lead(sentence, article)


def changes_rule(sentence: str, article: Article) -> bool:
    """Whether the sentence copies the article but states another rule: a changed modal,
    number or party (altered, changed_number), a condition left out before the copy or in
    its middle (dropped_condition, skipped_condition), an item without its list's lead
    (dropped_lead), two passages joined (spliced), or a term the article does not name
    defined as it (defined_otherwise). Never supported."""
    return altered(sentence, article) is not None or \
        changed_number(sentence, article) is not None or \
        dropped_condition(sentence, article) is not None or \
        skipped_condition(sentence, article) is not None or \
        dropped_lead(sentence, article) is not None or \
        spliced(sentence, article) is not None or \
        defined_otherwise(sentence, article) is not None


def _modal_at(text: str, end: bool) -> bool:
    """Whether text ends (end) or begins with a modal word: the article's word right next
    to the copied passage, where the sentence has its own."""
    words = [w for ws in _MODALS.values() for w in ws]
    return any(text.endswith(w) if end else text.startswith(w) for w in words)


# A citation without 《》 is read from the start of its run of Chinese characters
# (人民法院应当认定为民法典第十条); the claim keeps the run up to its last modal word.
_CLAIM_MODAL_RE = re.compile(r".*(?:应当|可以|不得|必须|有权|无权|不能|禁止)")


def claim_text(sentence: str) -> str:
    """The sentence without its citations and markers: what it claims.

    >>> claim_text("根据《民法典》第十条，人民法院应当认定为民法典第十条规定的习惯[1]。")
    '根据，人民法院应当规定的习惯。'
    """
    out = sentence
    for ref in reversed(find_citations(sentence)):
        start = ref.end - len(ref.raw)
        kept = _CLAIM_MODAL_RE.match(ref.raw) if not ref.bracketed else None
        out = out[:start + (kept.end() if kept else 0)] + out[ref.end:]
    out = _MARKER_RE.sub("", out)
    return re.sub(r"《[^《》]{1,60}》", "", out)


def _grams(text: str, n: int) -> set[str]:
    out: set[str] = set()
    for run in _NON_CJK_RE.split(text):
        out.update(run[i:i + n] for i in range(len(run) - n + 1))
    return out


def _recall(claim: set[str], article: set[str]) -> float:
    return len(claim & article) / len(claim) if claim else 0.0


def _words(text: str) -> set[str]:
    import jieba

    return {w for w in jieba.lcut(text) if len(w) >= 2 and _CJK_RE.search(w)
            and w not in _FRAME}


def text_features(sentence: str, article: Article) -> list[float]:
    """The features of FEATURES but the cosine, for one (sentence, article) pair."""
    claim = claim_text(sentence)
    body = article.text
    # The longest passage shared, over Chinese characters only: a quotation whose
    # punctuation the model changed is still a quotation.
    cjk = "".join(_CJK_RE.findall(claim))
    match = SequenceMatcher(None, cjk, "".join(_CJK_RE.findall(body)),
                            autojunk=False).find_longest_match()
    return [
        _recall(_grams(claim, 2), _grams(body, 2)),
        _recall(_grams(claim, 3), _grams(body, 3)),
        match.size / len(cjk) if cjk else 0.0,
        _recall(_words(claim), _words(body)),
        math.log1p(len(cjk)),
    ]


def features(pairs: Sequence[tuple[str, Article]], embed: Embed | None) -> np.ndarray:
    """One row of FEATURES per (sentence, article) pair; the cosine is 0 without embed."""
    rows = [text_features(s, a) for s, a in pairs]
    if embed is not None and pairs:
        claims = embed([claim_text(s) or s for s, _ in pairs])
        bodies = embed([f"{a.law} {a.label} {a.text}" for _, a in pairs])
        cos = (claims * bodies).sum(axis=1)
    else:
        cos = np.zeros(len(rows))
    return np.array([r[:4] + [float(c)] + r[4:] for r, c in zip(rows, cos, strict=True)],
                    dtype=np.float64).reshape(len(rows), len(FEATURES))


@dataclass(frozen=True)
class SupportModel:
    """Logistic regression weights over standardised FEATURES, and the threshold on its
    probability above which a claim counts as supported."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float

    def probability(self, x: np.ndarray) -> np.ndarray:
        z = (x - np.array(self.mean)) / np.array(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.array(self.weights) + self.bias)))

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "mean": list(self.mean), "scale": list(self.scale),
                "weights": list(self.weights), "bias": self.bias, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, d: dict) -> SupportModel:
        if tuple(d["features"]) != FEATURES:
            raise ValueError(f"support weights are for features {d['features']}, "
                             f"this version computes {list(FEATURES)}")
        return cls(tuple(d["mean"]), tuple(d["scale"]), tuple(d["weights"]), float(d["bias"]),
                   float(d["threshold"]))

    @classmethod
    def default(cls) -> SupportModel:
        """The shipped model (src/legalrag/data/support.json)."""
        text = resources.files("legalrag.data").joinpath("support.json").read_text("utf-8")
        return cls.from_dict(json.loads(text))


class SupportScorer:
    """Decides support for the citation check: ``supports(sentence, article)``."""

    def __init__(self, model: SupportModel, embed: Embed | None) -> None:
        self.model = model
        self.embed = embed

    @classmethod
    def default(cls, embed: Embed | None) -> SupportScorer:
        return cls(SupportModel.default(), embed)

    def score(self, sentence: str, article: Article) -> float:
        return float(self.model.probability(features([(sentence, article)], self.embed))[0])

    def supports(self, sentence: str, article: Article) -> bool:
        if changes_rule(sentence, article):
            return False
        return quotes_clauses(sentence, article) or \
            self.score(sentence, article) >= self.model.threshold
