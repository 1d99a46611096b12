"""The assistant: question → retrieval → prompt → generation → checked answer.

One library API for the CLI and the UI. ``stream`` yields events in the order a person
wants to see them: the retrieved sources first (retrieval only, well under a second), the
provision (the best source's paragraph that answers the question, quoted verbatim, in the
passage design: provision.py; also a second source's when it scores nearly as well), what
the model is about to read and for about how long, a queue notice if another answer is
being generated, the answer's text pieces, and finally the checked :class:`Answer`.

    >>> assistant = Assistant(Settings.load())                       # doctest: +SKIP
    >>> answer = assistant.answer("试用期最长可以约定多久？")            # doctest: +SKIP
    >>> answer.text, [c.label for c in answer.citations]             # doctest: +SKIP
    >>> for event in assistant.stream("那如果是试用期呢？", [answer.turn]):  # doctest: +SKIP
    ...     ...

When retrieval finds nothing relevant enough (abstain.py), no model is loaded or run: the
answer says so and lists the closest articles.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
import unicodedata
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from legalrag.answer.check import (
    QUOTED,
    REPEALED,
    UNSUPPORTED,
    VERIFIED,
    CheckedCitation,
    CorpusFacts,
    annotate,
    changed_copies,
    check_answer,
    cites_only,
    premise_notes,
    repeal_notes,
    uncited_sentences,
)
from legalrag.answer.grammar import citation_grammar, titles_in
from legalrag.answer.llm import ChatModel, Usage, load_chat_model
from legalrag.answer.prompt import (
    BRIEF_REMINDER,
    BRIEF_SYSTEM_PROMPT,
    REMINDER,
    SYSTEM_PROMPT,
    Message,
    Source,
    build_messages,
    fit_passages,
    fit_sources,
    readable_tokens,
    source_budget,
)
from legalrag.answer.provision import (
    Passage,
    PassageScorer,
    asked_passage,
    provisions,
    referenced,
)
from legalrag.answer.support import SupportScorer
from legalrag.citations import LawNames
from legalrag.config import Settings
from legalrag.errors import QueryError
from legalrag.index.embed import load_embedder
from legalrag.records import Article, Hit
from legalrag.retrieval.abstain import AbstainRule, measure
from legalrag.retrieval.glossary import Glossary
from legalrag.retrieval.rewrite import Turn, rewrite_query
from legalrag.vocab import UNCITED_HEAD, UNCITED_WARNING

log = logging.getLogger(__name__)

DISCLAIMER = "（以上为法律信息，不构成法律意见；具体情况请咨询执业律师。）"
ABSTAIN_TEXT = "法库中没有找到与这个问题足够相关的法律条文，因此不作回答。"
CANDIDATES_INTRO = "最接近的条文（相关性不足，仅供参考）："
NO_CITATION_NOTE = "注意：回答没有引用所给来源，请以来源条文的原文为准。"
UNCHECKED_NOTE = "注意：回答中有{n}处引用无法在法库中核实或不在所给来源中，已用〔〕标出。"
# a source cited for a sentence the check could not confirm: the article is there
UNSUPPORTED_NOTE = "注意：回答中有{n}处说法未能与所引来源条文核实，已用〔〕标出，请对照原文。"
PROVISO_NOTE = ("注意：回答中有{n}处已核实的说法，所引条文另有例外或但书而回答没有写出，"
                "已在引用后注明。")
CHANGED_COPY_NOTE = ("注意：回答中有{n}处照抄条文时改动了原文的字词"
                     "（数字、否定、上下限或当事人等）或略去了条文所附的条件，"
                     "已用〔〕标出，请以条文原文为准。")
UNCITED_NOTE = ("注意：回答中有{n}句没有引用条文，已移到回答之后的“模型的推断”中；"
                "这些是模型自己的概括或推断，未经核实，请以条文原文为准。")
# What is left when every sentence of the model's text went to 模型的推断.
ALL_UNCITED = "模型写出的句子都没有引用条文，见下方“模型的推断”；请以上面引用的条文原文为准。"
EMPTY_ANSWER = "模型没有生成回答。请参考检索到的来源条文。"
TRUNCATED_NOTE = "（回答达到长度上限，已截断。）"
LOOP_NOTE = "（模型开始重复，已停止生成。）"
CANDIDATES_SHOWN = 3
# A tail of LOOP_WINDOW characters seen LOOP_TIMES times is a loop. The model's loops are
# often whole paragraphs restated once (bench: a 5-item list written twice to max_tokens),
# so two occurrences suffice; 80 identical characters twice is never worth waiting for.
LOOP_WINDOW = 80
# the number of a list item at a line's start: 2. / 2、 / (2) / （十四） / 十四、 / 第十四，
_LIST_NUMBER_RE = re.compile(
    r"(?m)^(\s*(?:[-*]\s*)?)(?:\d{1,3}(?=[.、．)）])|[（(][一二三四五六七八九十百零〇\d]{1,6}[）)]"
    r"|第?[一二三四五六七八九十百零〇]{1,5}(?=[、，,.．]))")
LOOP_TIMES = 2
PROVISION_INTRO = "依据"
# A second quoted paragraph is a related provision, less sure than the first: it says so.
SECOND_INTRO = "另见"
# The quoted paragraphs come from the best five sources (their passage scores carry the
# rank discount, provision.RANK_DECAY); chosen with provision.SECOND_PROVISION, below.
PROVISION_FROM = 5
# Prompt tokens per second assumed when no prefill could be timed (a backend that reports
# no usage). A process times the shared prompt prefix at warm_up or before its first
# question (Assistant._read_prefix); the 1.5B model reads 40 a second on two AVX2 cores.
DEFAULT_PREFILL_TPS = 120.0
# The speed each loaded chat model last read a prompt at, shared by every Assistant over it
# (models are loaded once per process and shared, and so is the machine they run on).
_SPEEDS: weakref.WeakKeyDictionary[ChatModel, float] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Timings:
    """Where the time went, in milliseconds, and the tokens spent."""

    retrieval_ms: float
    first_token_ms: float  # from the question to the first answer token (0 if abstained)
    total_ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    queue_ms: float = 0.0
    threads: int = 0  # llama.cpp threads used (0: not known)

    def to_dict(self) -> dict:
        return {k: round(v, 1) if isinstance(v, float) else v
                for k, v in ((f, getattr(self, f)) for f in self.__slots__)}


@dataclass(frozen=True)
class Answer:
    """A checked answer. ``text`` is what to show: the model's answer with every citation
    that is not verified marked, notes on repealed laws, and the disclaimer."""

    question: str
    rewritten_query: str  # the standalone query retrieval used
    hits: tuple[Hit, ...]  # everything retrieved, best first
    sources: tuple[Source, ...]  # what the model was shown, numbered as it cites them
    text: str
    raw_text: str  # the model's own words, unmarked
    citations: tuple[CheckedCitation, ...]
    abstained: bool
    timings: Timings
    model: str
    notes: tuple[str, ...] = ()
    provisions: tuple[Passage, ...] = ()  # the paragraphs quoted before the model's words
    # what the question cites that the corpus cannot back (check.premise_notes); text
    # starts with them
    premise: tuple[str, ...] = ()

    @property
    def turn(self) -> Turn:
        """This exchange as history for a follow-up question."""
        rewritten = self.rewritten_query if self.rewritten_query != self.question else ""
        return Turn(self.question, rewritten)

    def labels(self) -> dict[str, int]:
        """How many citations got each label."""
        out: dict[str, int] = {}
        for c in self.citations:
            out[c.label] = out.get(c.label, 0) + 1
        return out

    @property
    def uncited(self) -> list[tuple[int, int]]:
        """Where the sentences of raw_text that cite nothing are (check.uncited_sentences)."""
        if self.abstained:
            return []
        return uncited_sentences(self.raw_text, self.citations,
                                 [s.article for s in self.sources])

    def to_dict(self) -> dict:
        return {
            "question": self.question, "rewritten_query": self.rewritten_query,
            "abstained": self.abstained, "text": self.text, "raw_text": self.raw_text,
            "model": self.model, "notes": list(self.notes), "premise": list(self.premise),
            "sources": [{"n": s.n, "citation": s.article.citation, "id": s.article.id,
                         "truncated": s.truncated} for s in self.sources],
            "hits": [h.to_dict() for h in self.hits],
            "citations": [c.to_dict() for c in self.citations],
            "timings": self.timings.to_dict(),
            "provisions": [{"citation": p.citation, "id": p.article.id,
                            "paragraph": p.paragraph, "item": p.item, "quote": p.quote}
                           for p in self.provisions],
        }


# Events of Assistant.stream, in order: Sources, then Queued (only when waiting), Token*,
# then Final.
@dataclass(frozen=True, slots=True)
class Sources:
    question: str
    rewritten_query: str
    hits: tuple[Hit, ...]
    abstained: bool
    retrieval_ms: float
    premise: tuple[str, ...] = ()  # check.premise_notes of the question, shown first


@dataclass(frozen=True, slots=True)
class Provision:
    """The paragraphs that answer the question (one, or two from two sources), quoted
    before the model speaks."""

    passages: tuple[Passage, ...]
    ms: float  # from the question to this event


@dataclass(frozen=True, slots=True)
class Reading:
    """The model starts reading its sources: how many, and about how long it will take."""

    sources: int
    tokens: int  # prompt tokens the model has not read before
    seconds: float  # estimated from the measured prefill speed


@dataclass(frozen=True, slots=True)
class Queued:
    ahead: int  # answers being generated or waiting before this one


@dataclass(frozen=True, slots=True)
class Token:
    text: str


@dataclass(frozen=True, slots=True)
class Final:
    answer: Answer


Event = Sources | Provision | Reading | Queued | Token | Final


_HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def plain_question(text: str) -> str:
    """text with the invisible and layout characters that input methods and copying bring
    in made plain: line breaks (\\r\\n, \\r, U+2028/2029) become \\n, every other space (the
    full-width 全角空格 U+3000, a no-break space) a space, and format characters (zero-width
    joiners and spaces, a byte order mark, soft hyphens, direction marks) are dropped. A
    person cannot see them, so cannot be asked to retype the question without them.

    >>> plain_question("试用期\\u3000最长多久？\\u200d\\r\\n第二行")
    '试用期 最长多久？\\n第二行'
    """
    out = []
    for ch in text.replace("\r\n", "\n").replace("\r", "\n"):
        kind = unicodedata.category(ch)
        if kind in ("Zl", "Zp"):
            out.append("\n")
        elif kind == "Zs":
            out.append(" ")
        elif kind != "Cf":
            out.append(ch)
    return "".join(out)


def validate_question(question: object, max_chars: int) -> str:
    """The question made plain (plain_question) and stripped, or a QueryError that says
    what is wrong with it."""
    if not isinstance(question, str):
        raise QueryError("the question must be text")
    q = plain_question(question).strip()
    if not q:
        raise QueryError("the question is empty",
                         fix="type a legal question, e.g. 试用期最长多久？")
    if len(q) > max_chars:
        raise QueryError(f"the question is {len(q)} characters long; the limit is {max_chars}",
                         fix="shorten it to the facts that matter")
    bad = sorted({f"U+{ord(ch):04X}" for ch in q if not ch.isprintable() and ch not in "\n\t"})
    if bad:
        raise QueryError(f"the question contains control characters ({', '.join(bad[:5])})",
                         fix="retype the question as plain text", code="control_characters")
    if not _HAN_RE.search(q):
        # The statutes are Chinese: a question without one Chinese character finds nothing,
        # and "nothing relevant in the corpus" would be the wrong reason.
        raise QueryError("the question has no Chinese characters",
                         fix="ask in Chinese, e.g. 试用期最长多久？", code="not_chinese")
    return q


def abstain_text(hits: Sequence[Hit], premise: Sequence[str] = ()) -> str:
    """The reply when nothing relevant was found: say so, then the closest candidates."""
    lines = [*(f"{p}\n" for p in premise), ABSTAIN_TEXT]
    if hits:
        lines += ["", CANDIDATES_INTRO]
        lines += [f"- {h.article.citation}（{' › '.join(h.article.path) or h.article.law_title}）"
                  for h in hits[:CANDIDATES_SHOWN]]
    lines += ["", "可以换一种说法、补充具体情形后再问。", "", DISCLAIMER]
    return "\n".join(lines)


def looping(text: str, window: int = LOOP_WINDOW, times: int = LOOP_TIMES) -> bool:
    """Whether text ends in a passage it has already produced times - 1 times before.

    A 1.5B model at temperature 0 can fall into repeating a sentence until max_tokens;
    on 2 cores that is half a minute spent on nothing, so generation stops instead.

    >>> looping("甲乙丙。" * 30, window=8), looping("甲乙丙丁戊己庚辛壬癸" * 3, window=11)
    (True, False)
    """
    if len(text) < window * times:
        return False
    # A numbered list that repeats one item (2. 该驰名商标属于…的情形。 3. 该驰名商标属于…, or
    # （十五）劳动者被依法宣告破产的； （十六）劳动者被依法宣告破产的；) is a loop whose every
    # copy starts with a new number: the numbers do not count.
    text = _LIST_NUMBER_RE.sub(r"\g<1>#", text)
    return text.count(text[-window:]) >= times


def quoted_passages(scorer: PassageScorer, query: str, hits: Sequence[Hit],
                    names: LawNames | None = None, glossary: Glossary | None = None
                    ) -> tuple[list[Passage], tuple[Passage, ...]]:
    """The passages of the hits' articles, best first, and the provisions quoted from
    them (provision.provisions), which lead the list since the model always reads them.

    The paragraphs are scored against the question as the search read it: with the
    statute terms of its everyday words (glossary, when the search uses one), unless it
    names an article. 法院判了对方还钱，他就是不给 shares no word with 第二百四十七条's
    paragraph; read with 申请执行 发生法律效力的判决 it does.

    An article the question names is what it asks about: the quote comes from it, and
    the model reads it before anything else. A question that asks for named articles and
    nothing else (check.cites_only) is quoted the first two of them from their start, or
    the paragraph or item it cites (provision.asked_passage), not one paragraph each
    chosen by the words 是怎么规定的. names (the corpus's law names) tell the words before
    a bare title from the title (check.cites_only).
    """
    named = [h.article for h in hits if "lookup" in h.ranks]
    said = glossary.expand(query) if glossary is not None and not named else query
    ranked = scorer.rank(said, [h.article for h in hits])
    if named:
        ids = {a.id for a in named}
        ranked = sorted(ranked, key=lambda p: p.article.id not in ids)
    if named and cites_only(query, names):
        quoted = tuple(asked_passage(a, query) for a in named[:2])
    else:
        quoted = tuple(provisions(ranked, named or [h.article for h in hits[:PROVISION_FROM]]))
    return [*quoted, *(p for p in ranked if p not in quoted)], quoted


def quote_provision(p: Passage, first: bool = True) -> str:
    """The provision as the first lines of an answer's text: citation, then its words.
    A second one (first=False) is introduced as related (另见), not as the basis.

    >>> from legalrag.records import Article
    >>> a = Article("中华人民共和国劳动法", "劳动法", "法律", "", (), 3, 0, "第三条",
    ...             "劳动者享有平等就业的权利。", "", True, "", 0)
    >>> print(quote_provision(Passage(a, 1, None, "", a.text)))
    依据《劳动法》第三条：“劳动者享有平等就业的权利。”
    """
    return f"{PROVISION_INTRO if first else SECOND_INTRO}{p.citation}：“{p.quote}”"


def compose(raw: str, citations: Sequence[CheckedCitation], finish: str = "stop",
            provisions: Sequence[Passage] = (), sources: Sequence[Article] = (),
            premise: Sequence[str] = ()) -> tuple[str, tuple[str, ...]]:
    """The text to show for a generated answer, and the notes appended to it. sources: the
    articles the model read, for the sentences that cite nothing (check.uncited_sentences);
    premise: what the question cites that the corpus cannot back, said first."""
    uncited = uncited_sentences(raw, citations, sources)
    # sentences that cite nothing leave the answer for a section after it: two reviewers
    # found nearly half of them wrong (vocab.UNCITED_HEAD)
    body = annotate(raw, citations, uncited, fold=True).strip() or \
        (ALL_UNCITED if uncited else EMPTY_ANSWER)
    if uncited:
        body += "\n\n" + "\n".join(uncited_section(raw, uncited))
    body = "".join(quote_provision(p, i == 0) + "\n\n" for i, p in enumerate(provisions)) + body
    body = "".join(f"{p}\n\n" for p in premise) + body
    notes = [TRUNCATED_NOTE] if finish == "length" else [LOOP_NOTE] if finish == "loop" else []
    notes += repeal_notes(citations)
    # Repealed citations have their own note; a copied passage is no citation written.
    written = [c for c in citations if c.kind != "passage"]
    unsupported = sum(1 for c in written if c.label == UNSUPPORTED)
    unchecked = sum(1 for c in written
                    if c.label not in (VERIFIED, REPEALED, UNSUPPORTED, QUOTED))
    if unsupported:
        notes.append(UNSUPPORTED_NOTE.format(n=unsupported))
    if unchecked:
        notes.append(UNCHECKED_NOTE.format(n=unchecked))
    if changed := changed_copies(raw, citations):
        notes.append(CHANGED_COPY_NOTE.format(n=len(changed)))
    if provisos := sum(1 for c in written if c.label == VERIFIED and c.proviso):
        notes.append(PROVISO_NOTE.format(n=provisos))
    if uncited:
        notes.append(UNCITED_NOTE.format(n=len(uncited)))
    if raw.strip() and not any(c.label in (VERIFIED, UNSUPPORTED) for c in citations):
        notes.append(NO_CITATION_NOTE)
    return "\n\n".join([body, *notes, DISCLAIMER]), tuple(notes)


def uncited_section(raw: str, uncited: Sequence[tuple[int, int]]) -> list[str]:
    """The lines of the 模型的推断 section: its heading, the warning, each sentence."""
    return [UNCITED_HEAD.format(n=len(uncited)) + "：", UNCITED_WARNING,
            *(f"- {raw[s:e]}。" for s, e in uncited)]


def corpus_facts(retriever) -> CorpusFacts:
    """The citation-check tables of a retriever's build, computed once per build and kept
    with it (a LiveRetriever warmer builds them before a new build serves)."""
    return retriever.derived("corpus_facts",
                             lambda: CorpusFacts.from_articles(retriever.articles))


class Assistant:
    """Answers questions from the index with the configured chat model.

    retriever: a Retriever; default: the live index (picks up `index update` swaps).
    model: any ChatModel; default: loaded on the first question that needs it, once per
    process (llm.load_chat_model), so abstained questions never pay for loading it.
    """

    def __init__(self, settings: Settings, retriever=None, model: ChatModel | None = None
                 ) -> None:
        self.settings = settings
        self._retriever = retriever
        self._live = None
        if retriever is None:
            from legalrag.retrieval.live import LiveRetriever

            self._live = LiveRetriever(settings)
        self._model = model
        self._support: SupportScorer | None = None
        self._passages: PassageScorer | None = None
        self._lock = threading.Lock()
        self._prefill_tps: float | None = None  # set by hand: overrides the model's speed
        self._prefix_read = False  # the shared prompt prefix was read (and timed) once
        self._prefix_done = threading.Event()  # ... and that read has ended
        self.rule = AbstainRule(settings.abstain_min_dense, settings.abstain_min_bm25)

    def rule_for(self, retriever) -> AbstainRule:
        """The abstain rule for an index: without its dense part (still being built, or
        retrieval_mode = "bm25", where abstain.measure takes no cosine) BM25 decides alone,
        with its own calibrated threshold."""
        if "dense" not in retriever.parts or self.settings.retrieval_mode == "bm25":
            return AbstainRule(float("inf"), self.settings.abstain_min_bm25_alone)
        return self.rule

    @property
    def retriever(self):
        return self._retriever if self._live is None else self._live.get()

    @property
    def model(self) -> ChatModel:
        with self._lock:
            if self._model is None:
                self._model = load_chat_model(self.settings)
            return self._model

    @property
    def support(self) -> SupportScorer:
        """The claim-support scorer of the citation check, over the embedding model that
        embedded the articles (loaded once per process, like the index's own)."""
        with self._lock:
            if self._support is None:
                embedder = load_embedder(self.settings)
                self._support = SupportScorer.default(embed=embedder.encode)
            return self._support

    @property
    def passages(self) -> PassageScorer:
        """The paragraph scorer (provision.py), over the same embedding model."""
        with self._lock:
            if self._passages is None:
                self._passages = PassageScorer(load_embedder(self.settings).encode)
            return self._passages

    @property
    def brief(self) -> bool:
        """Whether answers follow the passage design (answer_design = "passages")."""
        return self.settings.answer_design == "passages"

    def facts(self, retriever) -> CorpusFacts:
        """Corpus facts for the citation check: one per loaded build, shared by every
        Assistant over it (see corpus_facts)."""
        return corpus_facts(retriever)

    def warm_up(self) -> None:
        """Load the embedding and chat models and prefill the system prompt now, so the
        first question is as fast as the ones after it (a UI calls this at start-up).

        Every prompt starts with the same system message and source intro; the model's KV
        cache keeps them between requests, so only the sources and question are new."""
        self.retriever.warm_up()
        self._read_prefix(self.model)
        if self.brief:
            _ = self.passages

    @property
    def prefill_tps(self) -> float:
        """Prompt tokens per second the chat model read at in its last timed prefill (by
        any Assistant over it); until one is timed, DEFAULT_PREFILL_TPS."""
        if self._prefill_tps is not None:
            return self._prefill_tps
        speed = _SPEEDS.get(self._model) if self._model is not None else None
        return speed or DEFAULT_PREFILL_TPS

    @prefill_tps.setter
    def prefill_tps(self, value: float) -> None:
        self._prefill_tps = value

    def _read_prefix(self, model: ChatModel, stop: threading.Event | None = None) -> None:
        """Prefill the prefix every prompt shares (the system message and the source intro)
        and time it. The model's KV cache keeps it, so the next prompt does not read it
        again: done before a process's first question, it costs that question one decoded
        token and gives its read limit the speed of this machine instead of a guess."""
        with self._lock:
            if self._prefix_read:
                return
            self._prefix_read = True
        try:
            messages = build_messages("", (), system=self.system_prompt)
            intro = messages[1].content.split("\n", 1)[0]  # SOURCES_INTRO: the shared prefix
            gen = model.stream([messages[0], Message("user", intro)], max_tokens=1,
                               **({"cancel": stop} if stop is not None else {}))
            gen.text()
            self._timed(model, gen.usage)
        finally:
            self._prefix_done.set()

    def _await_prefix(self, stop: threading.Event | None) -> None:
        """Wait while another thread (the launch's warm-up) reads the prefix, or until
        stop is set."""
        with self._lock:
            if not self._prefix_read:
                return
        while not self._prefix_done.wait(0.05):
            if stop is not None and stop.is_set():
                return

    @property
    def system_prompt(self) -> str:
        return BRIEF_SYSTEM_PROMPT if self.brief else SYSTEM_PROMPT

    @staticmethod
    def _timed(model: ChatModel, usage: Usage | None) -> None:
        """Learn the model's prefill speed from a generation that read at least a few
        dozen tokens (fewer are dominated by fixed costs)."""
        if usage is not None and usage.prefill_tokens >= 32 and usage.prefill_tps > 0:
            _SPEEDS[model] = usage.prefill_tps

    def answer(self, question: str, history: Sequence[Turn] = (), *, k: int | None = None
               ) -> Answer:
        """The checked answer to question, without streaming."""
        final = None
        for event in self.stream(question, history, k=k):
            if isinstance(event, Final):
                final = event.answer
        assert final is not None  # stream always ends with Final
        return final

    def stream(self, question: str, history: Sequence[Turn] = (), *, k: int | None = None,
               stop: threading.Event | None = None) -> Iterator[Event]:
        """Events for one question: Sources, [Provision], [Queued], Reading, Token…,
        Final (see module doc). Reading comes when the model starts on the question, so
        after a Queued it waits for the answers ahead.

        Raises QueryError for an empty, overlong or garbled question before any work.
        Closing the iterator early stops generation and frees the model for the next user;
        setting stop does the same from another thread, also while the model is still
        reading the prompt (the iterator then ends with Final, finish "cancelled").
        """
        s = self.settings
        q = validate_question(question, s.max_question_chars)
        for turn in history:
            if not isinstance(turn, Turn):
                raise QueryError("history must be a list of Turn records (Answer.turn)")
        query = rewrite_query(q, history)
        t0 = time.perf_counter()
        retriever = self.retriever
        hits = tuple(retriever.search(query, k=k or s.answer_top_k, mode=s.retrieval_mode,
                                      include_old=s.include_old_versions))
        relevance = measure(retriever, query, hits, s.retrieval_mode, s.include_old_versions)
        retrieval_ms = (time.perf_counter() - t0) * 1000
        abstained = self.rule_for(retriever).abstains(relevance)
        facts = self.facts(retriever)
        premise = premise_notes(q, facts)
        if premise and not any("lookup" in h.ranks for h in hits) and cites_only(q, facts.names):
            # 《民法典》第二千零一条是怎么规定的？: it names nothing the corpus holds and asks
            # nothing else, so whatever the search found would answer another question.
            abstained = True
        log.info("query %s: %d hits in %.0f ms, %s%s",
                 repr(query) if s.log_questions else f"of {len(query)} characters", len(hits),
                 retrieval_ms, relevance, " (abstain)" if abstained else "")
        yield Sources(q, query, hits, abstained, retrieval_ms, premise)
        if abstained:
            total = (time.perf_counter() - t0) * 1000
            yield Final(Answer(q, query, hits, (), abstain_text(hits, premise), "", (), True,
                               Timings(retrieval_ms, 0.0, total), model="", premise=premise))
            return
        ranked: list[Passage] = []
        quoted: tuple[Passage, ...] = ()
        if self.brief and hits:
            # The question as retrieval read it (a follow-up's rewrite) picks the paragraph.
            ranked, quoted = quoted_passages(self.passages, query, hits, facts.names,
                                             retriever.glossary)
            if quoted:
                yield Provision(quoted, (time.perf_counter() - t0) * 1000)
        yield from self._generate(q, query, hits, retriever, t0, retrieval_ms, ranked, quoted,
                                  stop, premise)

    def build_prompt(self, q: str, query: str, hits: tuple[Hit, ...], retriever,
                ranked: Sequence[Passage], model: ChatModel, quoted: int = 1
                ) -> tuple[list[Source], list[Message]]:
        """The sources and messages for the model, in the configured design; the first
        `quoted` of ranked are the quoted provisions, read whatever the budget."""
        s = self.settings
        system, reminder = ((BRIEF_SYSTEM_PROMPT, BRIEF_REMINDER) if self.brief
                            else (SYSTEM_PROMPT, REMINDER))
        cap = s.answer_passage_tokens if self.brief else s.answer_source_tokens
        if s.answer_read_seconds > 0:
            # what the model reads in answer_read_seconds at the speed it last read at
            cap = min(cap or sys.maxsize, readable_tokens(
                q, model.count_tokens, self.prefill_tps, s.answer_read_seconds,
                query=query, reminder=reminder))
        budget = source_budget(model.n_ctx, s.llm_max_tokens, q, model.count_tokens,
                               query=query, system=system, reminder=reminder, cap=cap)
        if self.brief:
            facts = self.facts(retriever)
            # The quoted articles are sources [1] (and [2]): the answer shows them as its
            # basis, so the model reads them first; the rest keep the retrieval order.
            lead = list(dict.fromkeys(p.article.id for p in ranked[:quoted]))
            order = sorted((h.article for h in hits),
                           key=lambda a: lead.index(a.id) if a.id in lead else len(lead))
            sources = fit_passages(
                ranked, order, budget, model.count_tokens,
                references=lambda chosen: referenced(chosen, facts.names, facts.lookup),
                # the quotes the answer shows are read whatever the time limit: a card
                # must never quote a provision the model was not given
                keep=max(quoted, 1))
        else:
            sources = fit_sources([h.article for h in hits], budget, model.count_tokens,
                                  max_chars=s.answer_source_chars)
        return sources, build_messages(q, sources, query, system=system, reminder=reminder)

    def _generate(self, q: str, query: str, hits: tuple[Hit, ...], retriever, t0: float,
                  retrieval_ms: float, ranked: Sequence[Passage] = (),
                  quoted: Sequence[Passage] = (), stop: threading.Event | None = None,
                  premise: tuple[str, ...] = ()) -> Iterator[Event]:
        s = self.settings
        model = self.model
        # A question asked while the launch's warm-up still reads the prefix waits for it
        # here: the warm-up is not a question ahead in the line, and a question queued
        # behind it would skip its 正在阅读 (its Reading comes before its turn does).
        self._await_prefix(stop)
        ahead = model.waiting()
        if ahead:
            yield Queued(ahead)
        if self._prefill_tps is None and model not in _SPEEDS:
            self._read_prefix(model, stop)  # the read limit needs this machine's speed
        sources, messages = self.build_prompt(q, query, hits, retriever, ranked, model,
                                              len(quoted))
        read = [src.article for src in sources]
        grammar = (citation_grammar(read, s.answer_opening if self.brief else "",
                                    titles_in("\n".join([q, query, *(src.text for src in sources)]),
                                              read))
                   if s.answer_grammar and sources else None)
        unread = max(model.count_tokens(messages[1].content), 0)
        gen = model.stream(messages, max_tokens=s.llm_max_tokens,
                           temperature=s.llm_temperature, seed=s.llm_seed,
                           **({"grammar": grammar} if grammar else {}),
                           **({"cancel": stop} if stop is not None else {}))
        pieces: list[str] = []
        first = 0.0
        loop = False
        try:
            # Behind another answer, 正在阅读 shows when the model starts on this one, not
            # while it still writes the other; stopped in the line, nothing is read at all.
            if not ahead or (gen.wait_turn() and not gen.cancelled):
                yield Reading(len(sources), unread, unread / self.prefill_tps)
            for piece in gen:
                first = first or time.perf_counter()
                pieces.append(piece)
                yield Token(piece)
                if len(pieces) % 16 == 0 and looping("".join(pieces)):
                    loop = True
                    break
        finally:
            gen.close()
        end = time.perf_counter()
        raw = "".join(pieces)
        citations = tuple(check_answer(raw, read, self.facts(retriever), self.support.supports))
        usage: Usage | None = gen.usage
        self._timed(model, usage)
        finish = "loop" if loop else usage.finish_reason if usage else "stop"
        text, notes = compose(raw, citations, finish, quoted, read, premise)
        timings = Timings(
            retrieval_ms, ((first or end) - t0) * 1000, (end - t0) * 1000,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cached_tokens=usage.cached_tokens if usage else 0,
            queue_ms=usage.queue_ms if usage else 0.0, threads=usage.threads if usage else 0)
        yield Final(Answer(q, query, hits, tuple(sources), text, raw, citations, False,
                           timings, model.name, notes, tuple(quoted), premise))


__all__ = ["Answer", "Assistant", "Event", "Final", "Queued", "Sources", "Timings", "Token",
           "Turn", "validate_question"]
