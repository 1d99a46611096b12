"""The assistant end to end over the small real index: real retrieval, the real SmolLM2
GGUF through llama.cpp (deterministic), the real citation check; and one slow answer with
the default Qwen model."""

import dataclasses
import json
import re
import threading
import time
from pathlib import Path

import pytest

from legalrag.answer.assistant import (
    DISCLAIMER,
    Answer,
    Assistant,
    Final,
    Provision,
    Queued,
    Reading,
    Sources,
    Token,
    abstain_text,
    compose,
    looping,
    validate_question,
)
from legalrag.answer.check import CorpusFacts, check_answer
from legalrag.answer.modelfile import smollm2_path
from legalrag.answer.prompt import build_messages
from legalrag.errors import ModelError, QueryError
from legalrag.numerals import to_chinese
from legalrag.records import Article
from legalrag.retrieval.retriever import Retriever
from legalrag.retrieval.rewrite import Turn
from legalrag.vocab import LABELS, NOT_RETRIEVED, UNSUPPORTED, VERIFIED

CHESS = "国际象棋中王车易位需要满足哪些条件？"
NAMED = "劳动合同法第十九条规定的试用期是多久？"


@pytest.fixture(scope="module")
def smol_settings(small_settings):
    return dataclasses.replace(small_settings, llm_model_path=str(smollm2_path()),
                               llm_context=2048, llm_max_tokens=48, llm_temperature=0.0,
                               answer_source_tokens=600)


@pytest.fixture(scope="module")
def assistant(smol_settings, small_index):
    return Assistant(smol_settings, retriever=small_index)


# -- pure parts -------------------------------------------------------------------------------

@pytest.mark.parametrize("question, message", [
    ("", "the question is empty"),
    (" \n\t ", "the question is empty"),
    ("问" * 1001, "the question is 1001 characters long; the limit is 1000"),
    ("试用期\x00多久", "control characters (U+0000)"),
    ("试用期\x1b[31m多久", "control characters (U+001B)"),
    (42, "the question must be text"),
    ("What is the maximum probation period?", "the question has no Chinese characters"),
])
def test_bad_questions_get_a_clear_error(question, message):
    with pytest.raises(QueryError, match=re.escape(message)):
        validate_question(question, 1000)


def test_good_questions_are_stripped():
    assert validate_question("  试用期多久？\n第二行 ", 1000) == "试用期多久？\n第二行"
    assert validate_question("GDPR 第5条", 1000) == "GDPR 第5条"  # one Chinese word is enough


@pytest.mark.parametrize("question, plain", [
    ("试用期\u3000最长多久？", "试用期 最长多久？"),  # a full-width space, as Chinese IMEs type it
    ("试用\u00a0期多久？", "试用 期多久？"),  # a no-break space copied from a web page
    ("物业公司有权罚款，合法吗？\u200d", "物业公司有权罚款，合法吗？"),  # a STARD question's ZWJ
    ("\ufeff试用期\u200b多久？", "试用期多久？"),  # a byte order mark, a zero-width space
    ("试用期多久？\r\n第二行\u2028第三行", "试用期多久？\n第二行\n第三行"),
])
def test_invisible_and_layout_characters_are_made_plain_not_refused(question, plain):
    """Characters a person cannot see cannot be retyped away: they are made plain, and the
    question is asked. Control characters proper (U+0000, an escape) are still refused."""
    assert validate_question(question, 1000) == plain


def art(law, number, text="……"):
    from legalrag.numerals import article_label

    return Article(f"中华人民共和国{law}", law, "法律", "t", (), number, 0,
                   article_label(number, 0), text, "2021-01-01", True, "t.md", 1)


def test_compose_marks_and_notes():
    sources = [art("民法典", 577)]
    facts = CorpusFacts.from_articles(sources + [art(
        "民法典", 1260, "《中华人民共和国合同法》同时废止。"), art("民法典", 509)])
    raw = ("依《民法典》第五百七十七条[1]承担违约责任；旧《合同法》第一百零七条同此；"
           "另见《民法典》第五百零九条。")
    text, notes = compose(raw, check_answer(raw, sources, facts))
    assert notes == ("《合同法》已被《民法典》废止（见《民法典》第一千二百六十条）。",
                     "注意：回答中有1处引用无法在法库中核实或不在所给来源中，已用〔〕标出。")
    assert text == ("依《民法典》第五百七十七条[1]承担违约责任；"
                    "旧《合同法》第一百零七条〔⚠已失效〕同此；"
                    "另见《民法典》第五百零九条〔未在检索来源中，请自行核对〕。\n\n"
                    + "\n\n".join(notes)
                    + "\n\n" + DISCLAIMER)
    text, notes = compose("试用期有上限。", [])
    assert notes == ("注意：回答没有引用所给来源，请以来源条文的原文为准。",)


def test_compose_a_source_cited_for_an_unconfirmed_claim_is_not_called_missing():
    """A browser session: 根据《消费者权益保护法》第二十四条〔未能核实此说法〕 was followed by
    "无法在法库中核实或不在所给来源中" and "回答没有引用所给来源", though the article was a
    source. The note says what the mark means, and the answer did cite a source."""
    sources = [art("劳动合同法", 38, "用人单位未及时足额支付劳动报酬的，劳动者可以解除劳动合同。")]
    facts = CorpusFacts.from_articles(sources + [art("劳动合同法", 47)])
    raw = "根据《劳动合同法》第三十八条，公司可以随时辞退员工。另见《劳动合同法》第四十七条。"
    got = check_answer(raw, sources, facts, support=lambda sentence, article: False)
    assert [c.label for c in got if c.kind == "article"] == [UNSUPPORTED, NOT_RETRIEVED]
    _, notes = compose(raw, got)
    assert notes == ("注意：回答中有1处说法未能与所引来源条文核实，已用〔〕标出，请对照原文。",
                     "注意：回答中有1处引用无法在法库中核实或不在所给来源中，已用〔〕标出。")
    assert compose("", [])[0].startswith("模型没有生成回答。")


def test_compose_heads_the_first_quote_as_the_basis_and_a_second_as_related():
    """Two quoted provisions: the first is the answer's basis (依据), the second a related
    provision the retrieval was less sure of (另见), each verbatim with its citation."""
    from legalrag.answer.provision import split_passages

    a38 = art("劳动合同法", 38, "用人单位未及时足额支付劳动报酬的，劳动者可以解除劳动合同。")
    a46 = art("劳动合同法", 46,
              "劳动者依照本法第三十八条规定解除劳动合同的，用人单位应当支付经济补偿。")
    quoted = [split_passages(a38)[0], split_passages(a46)[0]]
    text, _ = compose("可以。", [], provisions=quoted)
    first, second, rest = text.split("\n\n", 2)
    assert first == f"依据《劳动合同法》第三十八条：“{a38.text}”"
    assert second == f"另见《劳动合同法》第四十六条：“{a46.text}”"
    assert rest.startswith("可以。")
    alone, _ = compose("可以。", [], provisions=quoted[1:])
    assert alone.startswith("依据《劳动合同法》第四十六条")


def test_compose_notes_truncation_and_loops():
    assert compose("甲", [], "length")[1][0] == "（回答达到长度上限，已截断。）"
    assert compose("甲", [], "loop")[1][0] == "（模型开始重复，已停止生成。）"


def test_looping():
    assert looping("依法应当支付经济补偿。" * 16)  # 176 characters: the last 80 seen twice
    assert not looping("依法应当支付经济补偿。" * 15)  # 165: not room for it twice
    paragraph = "".join(f"{i}. 第{i}条规定的情形，依照合同约定处理。\n" for i in range(1, 6))
    assert looping("答：\n" + paragraph + "适用条件：\n" + paragraph)
    assert not looping("".join(f"第{i}点，情况各不相同。" for i in range(40)))
    # A dev answer (stard-518) ran to the length limit repeating one numbered item.
    item = "该驰名商标属于商标法第十一条、第十二条规定不得作为商标注册的情形。"
    assert looping("但是，只有在以下情况下才会支持：\n\n"
                   + "".join(f"{i}. {item}\n\n" for i in range(1, 8)))
    assert not looping("".join(f"{i}. {item[:-8]}第{i}种情形。\n" for i in range(1, 8)))
    # A list numbered in Chinese: an answer on a contract not renewed ran from （十一） to
    # （三十二） repeating one made-up item, 512 tokens and 58 s
    numerals = [to_chinese(i) for i in range(11, 33)]
    same = "劳动者被依法宣告破产或者被依法撤销的；"
    for mark in ("（{}）", "{}、", "第{}，"):
        numbered = "".join(mark.format(n) + same + "\n" for n in numerals)
        assert looping("有下列情形之一的：\n" + numbered[:200])
    # the items of an article, copied in turn, are not a loop
    article = ["在试用期间被证明不符合录用条件的；", "严重违反用人单位的规章制度的；",
               "严重失职，营私舞弊，给用人单位造成重大损害的；",
               "劳动者同时与其他用人单位建立劳动关系，对完成本单位的工作任务造成严重影响的；",
               "被依法追究刑事责任的。"]
    assert not looping("".join(f"（{to_chinese(i)}）{t}\n" for i, t in enumerate(article, 1)))


def test_abstain_text_lists_candidates(small_index):
    hits = small_index.search(CHESS, k=5)
    text = abstain_text(hits)
    assert text.startswith("法库中没有找到与这个问题足够相关的法律条文")
    for h in hits[:3]:
        assert h.article.citation in text
    assert [ln[:2] for ln in text.splitlines()].count("- ") == 3
    assert text.endswith(DISCLAIMER)


# -- with the real index ----------------------------------------------------------------------

def test_out_of_corpus_question_abstains_without_the_model(small_settings, small_index,
                                                           tmp_path):
    # A model path that does not exist: loading the model would raise ModelError.
    settings = dataclasses.replace(small_settings, llm_model_path=str(tmp_path / "no.gguf"))
    events = list(Assistant(settings, retriever=small_index).stream(CHESS))
    assert [type(e) for e in events] == [Sources, Final]
    answer = events[-1].answer
    assert events[0].abstained and answer.abstained and answer.citations == ()
    assert answer.sources == () and answer.raw_text == "" and answer.model == ""
    assert answer.text == abstain_text(answer.hits)
    assert answer.timings.first_token_ms == 0.0 and answer.timings.retrieval_ms > 0


def test_a_question_naming_an_article_the_corpus_lacks_is_told_so_first(small_settings,
                                                                          small_index, tmp_path):
    """《劳动合同法》第九百条 does not exist: the sources say so at once, and the answer
    (here abstained, so without the model) starts with it; an article that exists gets no
    such note."""
    settings = dataclasses.replace(small_settings, llm_model_path=str(tmp_path / "no.gguf"))
    assistant = Assistant(settings, retriever=small_index)
    events = list(assistant.stream(f"《劳动合同法》第九百条和{CHESS}"))
    note = ("请注意：法库中查不到问题里的《劳动合同法》第九百条，《劳动合同法》没有第九百条。"
            "下面列出的是检索到的其他条文，不是该条，请核对法律名称和条文号。")
    assert events[0].premise == (note,) and events[-1].answer.premise == (note,)
    assert events[-1].answer.text.startswith(note + "\n\n法库中没有找到")
    assert events[-1].answer.to_dict()["premise"] == [note]
    assert Assistant(settings, retriever=small_index).answer(CHESS).premise == ()
    # Asked for and nothing else, an article the corpus lacks is not answered from whatever
    # the search found, though the search finds 劳动合同法 articles
    bare = assistant.answer("《劳动合同法》第九百条是怎么规定的？")
    assert bare.abstained and bare.text.startswith(note)
    assert bare.hits and bare.hits[0].article.law == "劳动合同法"
    # with a question around it, the question is answered (here: the model path is bad,
    # so the answer fails at loading the model, after the search)
    with pytest.raises(ModelError):
        assistant.answer("《劳动合同法》第九百条规定的试用期最长多久？")


def test_an_answer_streams_sources_tokens_then_the_checked_answer(assistant):
    events = list(assistant.stream(NAMED))
    assert isinstance(events[0], Sources) and not events[0].abstained
    assert isinstance(events[-1], Final)
    # The quoted provision and the reading notice come before the model's words.
    assert [type(e) for e in events[1:3]] == [Provision, Reading]
    tokens = [e.text for e in events[3:-1]]
    assert tokens and all(isinstance(e, Token) for e in events[3:-1])
    answer: Answer = events[-1].answer
    assert events[0].premise == answer.premise == ()  # 第十九条 exists
    assert answer.raw_text == "".join(tokens)
    assert not answer.abstained and answer.rewritten_query == NAMED
    first = answer.sources[0].article
    assert (first.law, first.number) == ("劳动合同法", 19)  # exact lookup, source [1]
    assert [s.n for s in answer.sources] == list(range(1, len(answer.sources) + 1))
    assert answer.hits[0].article == first and answer.model == "SmolLM2-135M-Instruct.Q4_1"
    assert {c.label for c in answer.citations} <= set(LABELS)
    assert answer.text.endswith(DISCLAIMER)
    t = answer.timings
    assert 0 < t.retrieval_ms <= t.first_token_ms <= t.total_ms
    assert t.prompt_tokens > 100 and 0 < t.completion_tokens <= 48
    # Asked again, the same sources make the same prompt, and its prefix comes from the KV
    # cache. The text itself is not compared: with a cached prefix llama.cpp evaluates the
    # rest in other batches, whose float sums differ in the last bits, and a small model can
    # then pick another token (seen on an AVX2-only machine). What is guaranteed is the input.
    # The read limit is off here: it follows the speed the model last read at, which another
    # job on the same cores changes between the two questions.
    steady = Assistant(dataclasses.replace(assistant.settings, answer_read_seconds=0),
                       retriever=assistant.retriever)
    once, again = steady.answer(NAMED), steady.answer(NAMED)
    assert [s.article for s in again.sources] == [s.article for s in once.sources]
    assert again.timings.prompt_tokens == once.timings.prompt_tokens
    assert again.timings.cached_tokens > 0 and again.raw_text


def test_the_prompt_fits_the_source_budget(smol_settings, small_index):
    # The whole-article design (answer_design = "articles"); the passage design's budget
    # is tested in test_answer_design.py.
    assistant = Assistant(dataclasses.replace(smol_settings, answer_design="articles"),
                          retriever=small_index)
    answer = assistant.answer(NAMED, k=8)
    model = assistant.model
    used = sum(model.count_tokens(s.block) for s in answer.sources)
    assert used <= 600 and len(answer.sources) < 8  # the rest did not fit
    # What the model evaluated is exactly the prompt built from the recorded sources.
    messages = build_messages(answer.question, answer.sources, answer.rewritten_query)
    assert answer.timings.prompt_tokens == len(model.prompt_tokens(messages))
    assert answer.timings.prompt_tokens + 48 <= model.n_ctx


def test_follow_up_is_rewritten_and_returned(assistant):
    first = assistant.answer(NAMED)
    follow = assistant.answer("那如果劳动合同期限是两年呢？", [first.turn])
    assert follow.rewritten_query == "劳动合同法第十九条规定的试用期是多久；如果劳动合同期限是两年"
    assert follow.question == "那如果劳动合同期限是两年呢？"
    assert follow.turn == Turn(follow.question, follow.rewritten_query)
    assert (follow.sources[0].article.law, follow.sources[0].article.number) == ("劳动合同法", 19)
    with pytest.raises(QueryError, match="history"):
        assistant.answer("那呢？", ["公司辞退员工要给经济补偿吗？"])


def test_an_answer_run_refuses_unusable_questions_before_it_starts(smol_settings, small_index):
    """eval-answers once stopped an hour into a run at a question it could not ask. Every
    question is checked first, and the error names each one that cannot be asked; a
    question with only invisible characters to clean is asked."""
    from legalrag.answer.evaluate import run_answer_eval
    from legalrag.retrieval.evaluate import EvalQuery

    fresh = Assistant(smol_settings, retriever=small_index)
    queries = [EvalQuery("ok", "试用期\u3000最长多久？\u200d", ("《劳动合同法》第十九条",)),
               EvalQuery("nul", "试用期\x00多久", ("《劳动合同法》第十九条",)),
               EvalQuery("latin", "How long is probation?", ("《劳动合同法》第十九条",))]
    with pytest.raises(QueryError) as e:
        run_answer_eval(fresh, queries)
    assert e.value.message.startswith("2 question(s) cannot be asked: nul: ")
    assert "latin: the question has no Chinese characters" in e.value.message
    assert not fresh._prefix_read  # warm_up (models, prompt prefix) never ran
    report = run_answer_eval(fresh, queries[:1])
    assert report.results[0].answer.question == "试用期 最长多久？"


def test_a_second_question_waits_its_turn(assistant):
    first = assistant.stream(NAMED)
    assert isinstance(next(first), Sources)
    while not isinstance(next(first), Token):  # then the first answer holds the model
        pass
    seen: list = []

    def second():
        seen.extend(assistant.stream(NAMED))

    t = threading.Thread(target=second, daemon=True)
    t.start()
    try:
        while not any(isinstance(e, Queued) for e in seen) and t.is_alive():
            time.sleep(0.01)
        time.sleep(0.5)  # the first answer holds the model: the second is not read yet
        assert [type(e) for e in seen][-1] is Queued, seen
        rest = list(first)
    finally:
        first.close()  # a failed check must not leave the second waiting for the model
    t.join(120)
    kinds = [type(e) for e in seen]
    assert kinds[0] is Sources and kinds.index(Queued) < kinds.index(Reading) < kinds.index(Token)
    assert seen[kinds.index(Queued)].ahead == 1
    assert isinstance(seen[-1], Final) and isinstance(rest[-1], Final)
    mine, theirs = seen[-1].answer, rest[-1].answer
    # The queued answer was written from the very same prompt once the first had finished
    # (its text is not compared: see the test above for why it may differ in a token).
    assert [s.article for s in mine.sources] == [s.article for s in theirs.sources]
    assert mine.timings.prompt_tokens == theirs.timings.prompt_tokens
    assert mine.timings.queue_ms > 0 and mine.raw_text


def test_stopping_early_frees_the_model(assistant):
    stream = assistant.stream(NAMED)
    next(stream), next(stream)
    stream.close()
    assert assistant.model.waiting() == 0
    assert assistant.answer(NAMED).raw_text


def test_answer_as_json_is_complete(assistant):
    d = json.loads(json.dumps(assistant.answer(NAMED).to_dict(), ensure_ascii=False))
    assert set(d) == {"question", "rewritten_query", "abstained", "text", "raw_text", "model",
                      "notes", "sources", "hits", "citations", "timings", "provisions",
                      "premise"}
    assert d["provisions"][0]["citation"].startswith("《劳动合同法》第十九条")
    assert 1 <= len(d["provisions"]) <= 2
    assert d["sources"][0]["citation"] == "《劳动合同法》第十九条"
    assert set(d["timings"]) == {"retrieval_ms", "first_token_ms", "total_ms", "prompt_tokens",
                                 "completion_tokens", "cached_tokens", "queue_ms", "threads"}


# -- the CLI ----------------------------------------------------------------------------------

def cli(settings, *args):
    from legalrag.cli import main

    return main(["--corpus", str(settings.corpus_dir), "--index-dir", str(settings.index_dir),
                 *args])


def test_cli_ask_abstains_on_chess(small_settings, capsys):
    assert cli(small_settings, "ask", CHESS) == 0
    out = capsys.readouterr().out
    assert out.index("来源") < out.index("法库中没有找到")


def test_cli_ask_says_what_the_question_cites_wrongly_once(small_settings, capsys):
    """The note on 《劳动合同法》第九百条 is printed under the sources, and the abstention
    that follows does not repeat it."""
    assert cli(small_settings, "ask", "《劳动合同法》第九百条是怎么规定的？") == 0
    out = capsys.readouterr().out
    note = "请注意：法库中查不到问题里的《劳动合同法》第九百条"
    assert out.count(note) == 1
    assert out.index("来源") < out.index(note) < out.index("法库中没有找到")


def test_cli_ask_prints_sources_answer_and_check(small_settings, capsys, monkeypatch):
    monkeypatch.setenv("LEGALRAG_LLM_MAX_TOKENS", "32")
    assert cli(small_settings, "ask", NAMED, "--model", str(smollm2_path()), "-k", "3") == 0
    captured = capsys.readouterr()
    out = captured.out
    assert out.index(" [1] 《劳动合同法》第十九条") < out.index("回答：") < out.index("引用核对")
    assert DISCLAIMER in out
    # the index and its models are loaded before the question's clock starts
    assert "已载入索引与检索模型" in captured.err


def test_cli_ask_json(small_settings, capsys, monkeypatch):
    monkeypatch.setenv("LEGALRAG_LLM_MAX_TOKENS", "32")
    assert cli(small_settings, "ask", NAMED, "--json", "--model", str(smollm2_path())) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["sources"][0]["citation"] == "《劳动合同法》第十九条" and not d["abstained"]


def test_cli_ask_bad_question(small_settings, capsys):
    assert cli(small_settings, "ask", "   ") == 2
    err = capsys.readouterr().err
    assert "the question is empty" in err
    assert "已载入" not in err  # refused before any model is loaded


# -- the default model ------------------------------------------------------------------------

@pytest.mark.slow
def test_default_model_answers_with_verified_citations(small_settings, small_index):
    # Without the read limit: what the model reads must not depend on this machine's
    # speed or load (tests/test_answer_design.py tests the limit).
    # The sources this question was written against: the ranking without the
    # cross-encoder (with it, 劳动法第二十一条 comes first and the model names the 劳动合同法's
    # 第二十一条 instead, marked unsupported; tests/test_answer_design.py says more).
    settings = dataclasses.replace(small_settings, llm_temperature=0.0, llm_max_tokens=256,
                                   answer_read_seconds=0.0, cross_encoder="")
    answer = Assistant(settings, retriever=Retriever.open(settings)).answer(
        "用人单位和劳动者约定试用期，最长不能超过多久？")
    assert not answer.abstained and answer.model == "qwen2.5-coder-1.5b-instruct"
    assert answer.citations, answer.raw_text
    assert {c.label for c in answer.citations} <= set(LABELS)
    # A right article is cited with a ✓: by name, by [n], or by copying its words (which
    # counts as citing it). A ✓ is never on an article that was
    # not retrieved. (Seen here: the model also named 第二十一条 for the rule it copied from
    # 第十九条, and the support check marked that citation unsupported.)
    verified = set()
    for c in answer.citations:
        if c.label != VERIFIED:
            continue
        a = c.article if c.kind == "article" else answer.sources[c.source - 1].article
        verified.add((a.law, a.number))
    retrieved = {(h.article.law, h.article.number) for h in answer.hits}
    # 劳动法第二十一条 states the same six-month cap as 劳动合同法第十九条: either is right.
    assert verified & {("劳动合同法", 19), ("劳动法", 21)}, answer.raw_text
    assert verified <= retrieved, answer.raw_text
    # Nothing that is not verified is left unmarked in the text shown.
    for c in answer.citations:
        if c.label != VERIFIED:
            assert c.raw + "〔" in answer.text
    assert Path(settings.cache_dir, "models", "qwen2.5-coder-1.5b-instruct.gguf").exists()
