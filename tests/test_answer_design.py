"""The answer built for a small CPU model (issue 12): the provision quoted first, a short
prompt of the best paragraphs plus what they point to, citations constrained by a grammar
to the sources, and a stop that reaches the model while it is still reading.

Real parts throughout: the small real index, the real embedding model for the paragraph
score, llama.cpp with the SmolLM2 and Gemma 3 GGUFs.
"""

from __future__ import annotations

import dataclasses
import re
import threading

import pytest

from legalrag.answer.assistant import (
    DEFAULT_PREFILL_TPS,
    PROVISION_FROM,
    Assistant,
    Final,
    Provision,
    Queued,
    Reading,
    Sources,
    Token,
)
from legalrag.answer.check import CorpusFacts
from legalrag.answer.grammar import citation_grammar, titles_in
from legalrag.answer.llm.base import Cancelled, Message, TurnQueue
from legalrag.answer.llm.llama import PREFILL_CHUNK, LlamaCppModel
from legalrag.answer.modelfile import gemma3_path, smollm2_path
from legalrag.answer.prompt import BLOCK_SEPARATOR, fit_passages
from legalrag.answer.provision import (
    GAP,
    SECOND_PROVISION,
    Passage,
    PassageScorer,
    asked_passage,
    excerpt,
    provisions,
    referenced,
    split_passages,
    whole_article,
)
from legalrag.citations import find_citations
from legalrag.index.embed import load_embedder
from legalrag.retrieval.retriever import Retriever

WAGES = "公司拖欠工资三个月，我可以辞职并要求经济补偿吗？"


@pytest.fixture(scope="module")
def facts(small_index):
    return CorpusFacts.from_articles(small_index.articles)


def article(facts, law, number):
    return next(a for a in facts.lookup(law, number) if a.in_force)


@pytest.fixture(scope="module")
def scorer(small_settings):
    return PassageScorer(load_embedder(small_settings).encode)


# -- paragraphs, the provision and the excerpts ----------------------------------------------

def test_passages_are_the_articles_own_lines(facts):
    a46 = article(facts, "劳动合同法", 46)
    passages = split_passages(a46)
    lines = [ln.strip() for ln in a46.text.split("\n") if ln.strip()]
    assert [p.text for p in passages] == lines
    first_item = passages[1]
    assert first_item.item == 1 and first_item.lead == lines[0]
    assert first_item.citation == "《劳动合同法》第四十六条第（一）项"
    # the first item follows its lead in the article: nothing left out, no ……
    assert first_item.quote == lines[0] + lines[1]
    third = passages[3]
    assert third.shown == (lines[0], GAP, lines[3]) and third.quote == "".join(third.shown)


def test_the_provision_is_verbatim_and_answers_the_question(facts, scorer):
    a38, a47 = article(facts, "劳动合同法", 38), article(facts, "劳动合同法", 47)
    ranked = scorer.rank(WAGES, [a38, a47])
    best38 = next(p for p in ranked if p.article == a38)
    # Of 第三十八条's items, the one about unpaid wages is the best paragraph.
    assert best38.item == 2 and "劳动报酬" in best38.text, best38
    for line in best38.lines:
        assert line in a38.text
    # A lower-ranked article's passages are discounted: ranking the same two articles the
    # other way round changes the scores by the rank factor only.
    swapped = {(p.article.id, p.key): p.score for p in scorer.rank(WAGES, [a47, a38])}
    assert swapped[(a38.id, best38.key)] < best38.score


def test_a_second_provision_only_from_another_article_that_scores_nearly_as_well(facts):
    a38, a46, a47 = (article(facts, "劳动合同法", n) for n in (38, 46, 47))

    def scored(a, paragraph, score):
        p = split_passages(a)[paragraph]
        return Passage(p.article, p.paragraph, p.item, p.lead, p.text, score)

    best, same, near, far = (scored(a38, 2, 1.0), scored(a38, 0, 0.99), scored(a47, 0, 0.95),
                             scored(a46, 0, 0.5))
    # The best article's other paragraph does not count as a second source.
    assert provisions([best, same, near], [a38, a47]) == [best, near]
    assert provisions([best, same, far], [a38, a46]) == [best]  # 0.5 < 0.9 x 1.0
    assert provisions([best, near], [a38, a47], second=0) == [best]
    assert provisions([best, near], [a38]) == [best]  # a47 is not among the best sources
    assert provisions([near, best], [a38]) == [best]
    assert provisions([], [a38]) == []
    assert 0 < SECOND_PROVISION < 1


def test_a_paragraph_that_only_introduces_a_list_is_quoted_with_its_best_item(facts):
    """A browser session quoted 《劳动合同法》第十四条第二款 as its first words alone,
    ending in 应当订立无固定期限劳动合同：, which answers nothing."""
    a46 = article(facts, "劳动合同法", 46)
    lead, *items = split_passages(a46)
    assert lead.item is None and lead.text.endswith(("：", ":"))

    def scored(p, score):
        return Passage(p.article, p.paragraph, p.item, p.lead, p.text, score)

    ranked = [scored(lead, 1.0), scored(items[2], 0.8), scored(items[0], 0.7)]
    (quoted,) = provisions(ranked, [a46])
    assert quoted.item == items[2].item and quoted.quote == lead.text + GAP + items[2].text
    assert quoted.citation == f"《劳动合同法》第四十六条第（{'一二三'[items[2].item - 1]}）项"
    # without an item to add, the paragraph is what there is
    assert provisions([scored(lead, 1.0)], [a46]) == [scored(lead, 1.0)]


def test_an_excerpt_keeps_leads_and_marks_gaps(facts, scorer):
    a46 = article(facts, "劳动合同法", 46)
    passages = split_passages(a46)
    text = excerpt(a46, [passages[3]])  # the third item
    assert text.split("\n") == [passages[0].text, GAP, passages[3].text, GAP]
    lines = [ln.strip() for ln in a46.text.split("\n") if ln.strip()]
    assert excerpt(a46, passages) == "\n".join(lines)  # all of it: no gap marks


def test_a_list_of_exceptions_is_quoted_as_the_rule_not_as_one_exception(facts):
    """《消费者权益保护法》第二十五条 reads …七日内退货，且无需说明理由，但下列商品除外：
    its best item would quote one exception (消费者定作的) as the basis of an answer on
    returns. The paragraph is the rule; it is quoted itself, its list marked as left out."""
    a162 = article(facts, "公司法", 162)  # 公司不得收购本公司股份。但是，有下列情形之一的除外：
    rule, *items = split_passages(a162)
    assert rule.item is None and rule.text.endswith("除外：") and items[0].item == 1

    def scored(p, score):
        return dataclasses.replace(p, score=score)

    (quoted,) = provisions([scored(rule, 1.0), scored(items[2], 0.8)], [a162])
    assert quoted == scored(rule, 1.0)
    assert quoted.quote == rule.text + GAP
    # An item that itself scores best is still quoted: the question was about it.
    (item,) = provisions([scored(items[2], 1.0), scored(rule, 0.8)], [a162])
    assert item.item == 3 and item.quote == rule.text + GAP + items[2].text
    # A list of conditions is still quoted by its best item (the test above): the
    # exceptions are told apart by the 但…下列…除外 that ends the paragraph.
    a46 = article(facts, "劳动合同法", 46)
    lead, *conditions = split_passages(a46)
    (cond,) = provisions([scored(lead, 1.0), scored(conditions[1], 0.7)], [a46])
    assert cond.item == conditions[1].item


def test_a_paragraph_that_refers_to_the_one_before_is_quoted_after_it(facts, scorer):
    """劳动合同除前款规定的必备条款外… means nothing without 前款: the quote, its citation,
    the highlighted lines and the prompt's excerpt take the paragraph before along."""
    a17 = article(facts, "劳动合同法", 17)
    passages = split_passages(a17)
    first = passages[0]
    second = next(p for p in passages if p.paragraph == 2 and p.item is None)
    assert "前款" in second.text and second.before == first.text
    assert all(p.before == "" for p in passages if p.paragraph == 1)
    assert second.citation == "《劳动合同法》第十七条第一款、第二款"
    assert second.lines == (first.text, second.text)
    assert second.quote == first.text + GAP + second.text
    assert all(line in a17.text for line in second.lines)
    # the prompt reads the paragraph before, its items left out
    assert excerpt(a17, [second]).split("\n") == [first.text, GAP, second.text]
    # 第二十四条: the paragraph before has no list, so the two are quoted without a gap
    a24 = article(facts, "劳动合同法", 24)
    rule, limit = split_passages(a24)
    assert limit.before == rule.text and limit.shown == (rule.text, limit.text)
    assert limit.quote == rule.text + limit.text
    # the score reads the paragraph's own words, as it was tuned to
    alone = dataclasses.replace(second, before="")
    assert scorer.scores(WAGES, [second]) == scorer.scores(WAGES, [alone])
    ranked = scorer.rank("劳动合同可以约定试用期吗？", [a17])
    assert all(p.before == q.before for p in ranked for q in passages if q.key == p.key)


def test_a_referenced_article_joins_the_prompt(facts, scorer):
    a46 = article(facts, "劳动合同法", 46)
    first_item = split_passages(a46)[1]  # 劳动者依照本法第三十八条规定解除劳动合同的
    refs = referenced([first_item], facts.names, facts.lookup)
    assert [(a.law, a.number) for a in refs] == [("劳动合同法", 38)]
    sources = fit_passages([first_item], [a46], 300, len,
                           references=lambda ps: referenced(ps, facts.names, facts.lookup))
    assert [(s.article.law, s.article.number) for s in sources] == [("劳动合同法", 46),
                                                                  ("劳动合同法", 38)]
    assert sources[1].text.startswith(split_passages(refs[0])[0].text)
    # Without the reference, 第三十八条 is not there.
    alone = fit_passages([first_item], [a46], 300, len)
    assert [s.article.number for s in alone] == [46]


def test_the_prompt_stays_within_its_budget(facts, scorer, small_index):
    hits = small_index.search(WAGES, k=5)
    articles = [h.article for h in hits]
    ranked = scorer.rank(WAGES, articles)
    for budget in (120, 250, 450):
        sources = fit_passages(ranked, articles, budget, len)
        assert sources and len(BLOCK_SEPARATOR.join(s.block for s in sources)) <= budget
        assert [s.n for s in sources] == list(range(1, len(sources) + 1))
        for s in sources:  # every line shown is the article's own (or a gap mark)
            assert all(line == GAP or line in s.article.text for line in s.text.split("\n"))
            # The header is the citation alone: the 编/章/节 cost prefill tokens.
            assert s.block.split("\n")[0] == f"[{s.n}]{s.article.citation}"
    # The whole articles would not fit: the budget did cut.
    assert sum(len(a.text) for a in articles) > 450


def test_every_quoted_provision_is_read_whatever_the_budget(facts):
    """A browser session quoted 《消费者权益保护法》第二十五条第三款 as 依据 while the sources
    panel said 未提供给模型: on a slow machine the second quote did not fit the read limit."""
    a38, a47 = article(facts, "劳动合同法", 38), article(facts, "劳动合同法", 47)
    first, second = split_passages(a38)[0], split_passages(a47)[0]
    budget = len(f"[1]{a38.citation}\n{first.text}") + 5  # room for the first alone
    alone = fit_passages([first, second], [a38, a47], budget, len)
    assert [s.article for s in alone] == [a38]
    both = fit_passages([first, second], [a38, a47], budget, len, keep=2)
    assert [s.article for s in both] == [a38, a47]
    assert second.text in both[1].text


# -- the assistant's events ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def brief(small_settings, small_index):
    settings = dataclasses.replace(small_settings, llm_model_path=str(smollm2_path()),
                                   llm_context=2048, llm_max_tokens=32, llm_temperature=0.0,
                                   answer_passage_tokens=300)
    return Assistant(settings, retriever=small_index)


def test_the_provision_comes_before_the_model(brief):
    events = list(brief.stream(WAGES))
    kinds = [type(e) for e in events]
    assert kinds[:3] == [Sources, Provision, Reading], kinds
    first_token = kinds.index(Token)
    assert kinds[-1] is Final and set(kinds[3:-1]) <= {Token, Queued} and first_token > 2
    quoted = events[1].passages
    answer = events[-1].answer
    assert answer.provisions == quoted and 1 <= len(quoted) <= 2
    assert all(p.article in [h.article for h in answer.hits[:PROVISION_FROM]] for p in quoted)
    assert len({p.article.id for p in quoted}) == len(quoted)  # two quotes: two articles
    # the first quote is the basis (依据), a second one a related provision (另见)
    assert answer.text.startswith("".join(f"{'依据' if i == 0 else '另见'}{p.citation}："
                                          f"“{p.quote}”\n\n" for i, p in enumerate(quoted)))
    assert events[1].ms <= answer.timings.first_token_ms
    assert events[2].sources == len(answer.sources) and events[2].tokens > 0
    # The model read the quoted paragraphs, as sources [1] (and [2]).
    for source, p in zip(answer.sources, quoted, strict=False):
        assert source.article == p.article and p.text in source.text


@pytest.mark.parametrize("question, law, number", [
    ("《劳动合同法》第四十七条是怎么规定的？", "劳动合同法", 47),
    ("劳动合同法第三十九条讲的是什么？和试用期有关吗？", "劳动合同法", 39),
    ("《劳动法》第三十六条是什么？", "劳动法", 36),
])
def test_an_article_the_question_names_is_quoted_and_read_first(brief, question, law, number):
    """A browser session asked 《民法典》第一千零七十九条是怎么规定的？: the article was source
    [1], but the quote came from a 司法解释 that mentions it, and the model was not given
    the article at all."""
    events = list(brief.stream(question, k=5))
    hits, quoted = events[0].hits, events[1].passages
    assert (hits[0].article.law, hits[0].article.number) == (law, number)
    assert "lookup" in hits[0].ranks
    assert quoted and all(p.article == hits[0].article for p in quoted)
    answer = events[-1].answer
    first = answer.sources[0]
    assert first.article == hits[0].article
    assert all(line in first.text for p in quoted for line in p.lines)


def test_a_question_asking_only_for_an_article_is_quoted_the_article(brief, facts):
    """《劳动合同法》第三十九条是怎么规定的？ was quoted its item （五） alone, chosen for the
    words 规定的 it shares with the question; asked for the article, the reader is shown
    the article. With a question of its own beside the number, a paragraph is chosen."""
    a39 = article(facts, "劳动合同法", 39)
    events = list(brief.stream("《劳动合同法》第三十九条是怎么规定的？", k=5))
    (quoted,) = events[1].passages
    assert quoted.article == a39 and quoted.citation == "《劳动合同法》第三十九条"
    assert quoted.shown == tuple(a39.text.split("\n"))  # every line, none left out
    assert events[-1].answer.text.startswith(f"依据《劳动合同法》第三十九条：“{quoted.quote}”")
    assert all(line in events[-1].answer.sources[0].text for line in quoted.lines)
    two = list(brief.stream("劳动合同法第三十九条和第四十条", k=5))[1].passages
    assert [(p.article.number, p.span > 0) for p in two] == [(39, True), (40, True)]
    mixed = list(brief.stream("劳动合同法第三十九条讲的是什么？和试用期有关吗？", k=5))[1]
    assert mixed.passages[0].span == 0 and mixed.passages[0].article == a39


def test_a_question_citing_a_paragraph_or_item_is_quoted_that_part(facts):
    a10, a39 = article(facts, "劳动合同法", 10), article(facts, "劳动合同法", 39)
    second = asked_passage(a10, "劳动合同法第十条第二款是什么意思")
    assert second.citation == "《劳动合同法》第十条第二款"
    assert second.shown == (a10.text.split("\n")[1],)
    item = asked_passage(a39, "《中华人民共和国劳动合同法》第三十九条第二项")
    assert item.citation == "《劳动合同法》第三十九条第（二）项"
    assert item.lines == tuple(a39.text.split("\n")[:3:2])  # the lead, then （二）
    # another law's 第三十九条, or none of the article's parts, is not this article's part
    assert asked_passage(a39, "《劳动法》第三十九条第二项").span > 0
    assert asked_passage(a10, "劳动合同法第十条第九款").span > 0


def test_a_long_article_is_quoted_from_its_start_as_far_as_it_fits(facts):
    a = article(facts, "劳动合同法", 39)
    lines = a.text.split("\n")
    cut = whole_article(a, limit=len(lines[0]) + len(lines[1]) + 1)
    assert cut.span == 2 and cut.shown == (lines[0], lines[1], GAP)
    assert whole_article(a, limit=1).shown == (lines[0], GAP)  # the first line always
    assert excerpt(a, [cut]) == "\n".join([lines[0], lines[1], GAP])


def test_a_slow_reader_gets_fewer_paragraphs_but_every_quote(brief):
    """answer_read_seconds cuts the prompt to what the model reads in that time at the
    prefill speed it last measured; the quoted paragraphs stay in it whatever the limit
    (a card never quotes a provision the model was not given), so they are its floor."""
    settings = dataclasses.replace(brief.settings, answer_passage_tokens=2000,
                                   answer_read_seconds=2.0)

    def ask(tps: float, **change) -> tuple[Reading, Provision, Final]:
        assistant = Assistant(dataclasses.replace(settings, **change),
                              retriever=brief.retriever, model=brief.model)
        assistant.prefill_tps = tps
        seen = {type(e): e for e in assistant.stream(WAGES)}
        return seen[Reading], seen[Provision], seen[Final]

    fast, _, _ = ask(100_000.0)
    slow, quoted, final = ask(250.0)  # 500 tokens in 2 s
    floor, _, _ = ask(1.0)  # 2 tokens in 2 s: nothing but the quotes
    assert floor.tokens <= slow.tokens < fast.tokens, (floor.tokens, slow.tokens, fast.tokens)
    assert slow.tokens <= max(500, floor.tokens)
    # what the slow reader still reads first is the quoted paragraph, and every quote
    assert quoted.passages[0].text in final.answer.sources[0].text
    assert all(any(p.text in src.text for src in final.answer.sources)
               for p in quoted.passages)
    # answer_read_seconds = 0: no time limit, the same prompt as the fast reader's
    unlimited, _, _ = ask(250.0, answer_read_seconds=0.0)
    assert unlimited.tokens == fast.tokens


def test_a_first_question_is_read_at_this_machines_speed_not_a_guess(brief):
    """Without warm_up (legalrag ask), the process times the prompt prefix
    every question shares before its first prompt is cut to the read limit, and every
    Assistant over the same model knows that speed."""
    model = LlamaCppModel(smollm2_path(), n_ctx=2048, threads=2)  # nothing read or timed yet
    first = Assistant(brief.settings, retriever=brief.retriever, model=model)
    assert first.prefill_tps == DEFAULT_PREFILL_TPS
    reading = next(e for e in first.stream(WAGES) if isinstance(e, Reading))
    assert first.prefill_tps != DEFAULT_PREFILL_TPS
    assert reading.seconds == pytest.approx(reading.tokens / first.prefill_tps)
    second = Assistant(brief.settings, retriever=brief.retriever, model=model)
    assert second.prefill_tps == first.prefill_tps


def test_the_answer_eval_times_its_first_question_warm(brief):
    """eval-answers warms up first, as the browser chat does at launch: the first question
    neither loads a model nor reads the shared prompt prefix on its own clock."""
    from legalrag.answer.evaluate import run_answer_eval
    from legalrag.retrieval.evaluate import EvalQuery

    model = LlamaCppModel(smollm2_path(), n_ctx=2048, threads=2)  # nothing read yet
    fresh = Assistant(brief.settings, retriever=brief.retriever, model=model)
    warm_when_asked = []
    stream = fresh.stream

    def asked(*args, **kwargs):
        warm_when_asked.append(fresh._prefix_read)
        return stream(*args, **kwargs)

    fresh.stream = asked
    report = run_answer_eval(fresh, [EvalQuery("q", WAGES, ("《劳动合同法》第三十条",))])
    assert warm_when_asked == [True]
    assert len(report.results) == 1 and report.results[0].first_token_ms is not None


def test_a_stop_set_before_reading_ends_without_a_token(brief):
    stop = threading.Event()
    stop.set()
    events = list(brief.stream(WAGES, stop=stop))
    assert not any(isinstance(e, Token) for e in events)
    assert isinstance(events[-1], Final) and brief.model.waiting() == 0
    assert brief.answer(WAGES).raw_text  # the model takes the next question


# -- llama.cpp: the grammar and the interruptible prefill ----------------------------------------

COPY = ("Repeat exactly, nothing else: "
        "根据《刑法》第一百条和《民法典》第五条[7]，还有《劳动合同法》第二十条[3]。")


@pytest.fixture(scope="module")
def gemma(small_settings):
    return LlamaCppModel(gemma3_path(small_settings.cache_dir), n_ctx=1024, threads=2)


def test_the_grammar_allows_only_the_sources_citations(gemma, facts):
    a19 = article(facts, "劳动合同法", 19)
    messages = [Message("user", COPY)]
    free = gemma.stream(messages, max_tokens=60, temperature=0.0).text()
    # Unconstrained, the model copies citations that are not among the sources ...
    assert {(r.law, r.number) for r in find_citations(free)} - {("劳动合同法", 19)}, free
    bound = gemma.stream(messages, max_tokens=60, temperature=0.0,
                         grammar=citation_grammar([a19])).text()
    # ... with the grammar, every citation and marker is one of them.
    cited = {(r.law, r.number) for r in find_citations(bound)}
    assert cited <= {("劳动合同法", 19)}, bound
    assert "[7]" not in bound and "[3]" not in bound and "《刑法》" not in bound
    named = bound.count("《劳动合同法》") + bound.count("《中华人民共和国劳动合同法》")
    assert bound.count("《") == named
    # With an opening, the answer must begin by naming its basis among the sources.
    opened = gemma.stream(messages, max_tokens=24, temperature=0.0,
                          grammar=citation_grammar([a19], opening="根据")).text()
    assert opened.startswith(("根据《劳动合同法》", "根据《中华人民共和国劳动合同法》")), opened


BARE = "Repeat exactly, nothing else: 第一，依照本法第四十条和第十九条的规定，第三人不得主张。"


def test_the_grammar_allows_a_bare_article_number_only_from_the_sources(gemma, facts):
    a19 = article(facts, "劳动合同法", 19)
    messages = [Message("user", BARE)]
    free = gemma.stream(messages, max_tokens=40, temperature=0.0).text()
    assert re.search("第四十[条條]", free), free  # unconstrained, the model copies it
    bound = gemma.stream(messages, max_tokens=40, temperature=0.0,
                         grammar=citation_grammar([a19])).text()
    written = set(re.findall(r"第[零〇一二两三四五六七八九十百千0-9]+[条條]", bound))
    assert written <= {"第十九条"}, bound
    # 第 and a number that is not an article's (第三人, 第四十一（) is still free: the
    # grammar closes 第N条, not 第.
    numerals = "零〇一二两三四五六七八九十百千0-9"
    assert re.search(f"第[{numerals}]+[^{numerals}条條]", bound), bound


SUFFIX = ("Repeat exactly, nothing else: "
          "依照《劳动合同法》第二十条之一，三分之一的人按第二十条之一办理。")


def test_the_grammar_keeps_a_source_number_from_growing_a_suffix(gemma, facts):
    """第二十条 is a source; 第二十条之一 would be another article, one it does not hold (the
    1.5B model wrote 《刑法》第二百六十四条之一 on a dev question, an article that does not
    exist). 三分之一 and 之规定 are not citations and stay free."""
    a20 = article(facts, "劳动合同法", 20)
    messages = [Message("user", SUFFIX)]
    free = gemma.stream(messages, max_tokens=48, temperature=0.0).text()
    assert re.search("条之一", free), free  # unconstrained, the model copies a suffix
    bound = gemma.stream(messages, max_tokens=48, temperature=0.0,
                         grammar=citation_grammar([a20])).text()
    assert "第二十条" in bound and not re.search("条之[一二三四五六七八九十]", bound), bound
    assert "三分之一" in bound, bound
    cited = {(r.law, r.number, r.suffix) for r in find_citations(bound)}
    assert cited <= {("劳动合同法", 20, 0)}, bound


TITLE = ("Repeat exactly, nothing else: "
         "未持有《房地产经纪机构批准书》的，依照《劳动合同法》第十九条处理。")


def test_a_title_from_the_question_may_be_written_but_never_cited(gemma, facts):
    """stard-1369 asks about 《房地产经纪机构批准书》; with only the sources' laws allowed
    after 《, the 1.5B model wrote 《城市房地产管理法》第三十七条规定的 again and again in its
    place. A title the question or a source writes may be written, but no article number
    may follow it: it is no citation."""
    a19 = article(facts, "劳动合同法", 19)
    messages = [Message("user", TITLE)]
    titles = titles_in(TITLE, [a19])
    assert titles == ["房地产经纪机构批准书"]
    without = gemma.stream(messages, max_tokens=48, temperature=0.0,
                           grammar=citation_grammar([a19])).text()
    assert "《房地产经纪机构批准书》" not in without, without
    bound = gemma.stream(messages, max_tokens=48, temperature=0.0,
                         grammar=citation_grammar([a19], titles=titles)).text()
    assert "《房地产经纪机构批准书》" in bound, bound
    assert {(r.law, r.number) for r in find_citations(bound)} <= {("劳动合同法", 19)}, bound
    # a law the sources mention is a title too: it may be named, not cited
    named = "Repeat exactly, nothing else: 依照《民事诉讼法》第十条和《劳动合同法》第十九条。"
    bound = gemma.stream([Message("user", named)], max_tokens=48, temperature=0.0,
                         grammar=citation_grammar([a19], titles=["民事诉讼法"])).text()
    assert not re.search("《民事诉讼法》第", bound), bound
    assert {(r.law, r.number) for r in find_citations(bound)} <= {("劳动合同法", 19)}, bound


class StopAfter(threading.Event):
    """An event that sets itself on its n-th check: a stop pressed mid-prefill, at a
    deterministic point."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.left = checks

    def is_set(self) -> bool:
        self.left -= 1
        if self.left < 0:
            self.set()
        return super().is_set()


def test_a_stop_during_prefill_ends_it_between_batches(small_settings):
    model = LlamaCppModel(smollm2_path(), n_ctx=2048, threads=2)
    model.reset_cache()
    long = Message("user", "劳动者的权利。" * 120)
    stop = StopAfter(3)
    gen = model.stream([long], max_tokens=16, temperature=0.0, cancel=stop)
    assert gen.text() == ""
    usage = gen.usage
    assert usage.finish_reason == "cancelled" and usage.decode_tokens == 0
    assert model.waiting() == 0
    # The next request finds exactly three batches read in the KV cache (the stop came on
    # the fourth check, far from the end of the prompt), reuses them and completes.
    again = model.stream([long], max_tokens=4, temperature=0.0)
    again.text()
    assert again.usage.cached_tokens == 3 * PREFILL_CHUNK < usage.prompt_tokens - PREFILL_CHUNK
    assert again.usage.finish_reason in ("stop", "length")


# -- the default model --------------------------------------------------------------------------

REAL_QUESTIONS = [  # (question, right articles): real questions answered in the small index
    # 劳动法第二十一条 states the same six-month cap as 劳动合同法第十九条.
    ("用人单位和劳动者约定试用期，最长不能超过多久？", {("劳动合同法", 19), ("劳动法", 21)}),
    ("公司一直不按时足额发工资，员工可以直接解除劳动合同吗？", {("劳动合同法", 38)}),
    ("国家规定劳动者每天工作时间最多是几个小时？", {("劳动法", 36)}),
]


@pytest.mark.slow
def test_the_default_model_cites_the_gold_article(small_settings, small_index):
    """The default Qwen GGUF in the default design: on each question the gold article
    reaches the reader with a ✓ (quoted as the provision or cited by the model), and the
    model itself cites a gold article with a ✓ on most of them, citing only sources."""
    # Without the read limit: what the model reads must not depend on this machine's
    # speed or load (the limit has its own test above).
    # The sources these questions were written against: the ranking without the
    # cross-encoder. With it the gold article still reaches the reader on all three, but
    # the model cites it itself on one (the sources' order changes what a 1.5B model
    # copies); the dev part measures both (docs/evaluation.md, "The cross-encoder stage").
    settings = dataclasses.replace(small_settings, llm_temperature=0.0, llm_max_tokens=200,
                                   answer_read_seconds=0.0, cross_encoder="")
    assistant = Assistant(settings, retriever=Retriever.open(settings))
    by_model = 0
    for question, right in REAL_QUESTIONS:
        answer = assistant.answer(question)
        assert not answer.abstained, question
        verified = set()
        for c in answer.citations:  # by name, by [n], or by copying the article's words
            if c.label == "verified":
                a = c.article if c.kind == "article" else answer.sources[c.source - 1].article
                verified.add((a.law, a.number))
        quoted = {(p.article.law, p.article.number) for p in answer.provisions}
        assert verified & right or quoted & right, (question, answer.text)
        by_model += bool(verified & right)
        shown = {(s.article.law, s.article.number) for s in answer.sources}
        cited = {(c.law, c.number) for c in answer.citations if c.kind == "article"}
        assert cited <= shown, answer.text  # the grammar allowed nothing else
    assert by_model >= 2, by_model


@pytest.mark.fast
def test_a_request_stopped_while_waiting_leaves_the_line():
    queue = TurnQueue()
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()
    gave_up = threading.Event()

    def first():
        with queue.turn():
            holding.set()
            release.wait(10)
            order.append("first")

    def second():  # stopped while it waits
        try:
            with queue.turn(gave_up):
                order.append("second")
        except Cancelled:
            order.append("second left")

    def third():
        with queue.turn(threading.Event()):
            order.append("third")

    threads = [threading.Thread(target=first)]
    threads[0].start()
    holding.wait(10)
    threads += [threading.Thread(target=second), threading.Thread(target=third)]
    threads[1].start()
    while queue.waiting() < 2:
        threading.Event().wait(0.01)
    threads[2].start()
    while queue.waiting() < 3:
        threading.Event().wait(0.01)
    gave_up.set()
    while queue.waiting() > 2:  # it left at once, before the first request ended
        threading.Event().wait(0.01)
    release.set()
    for t in threads:
        t.join(10)
    assert order == ["second left", "first", "third"] and queue.waiting() == 0
