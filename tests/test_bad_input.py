"""Bad input, all at once: a corpus holding every kind of broken file, and questions no one
should ask, through every layer that takes them (library, CLI, the chat service).

Each broken file is reported with its path and the reason, the rest is indexed, and
nothing in corpus/ is modified or deleted: the corpus is compared byte for byte (and by
modification time) before and after a build, an update and a failed build. Killed builds
are in test_faults.py; single-file parser cases in test_corpus.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import CORPUS, copy_corpus, make_settings

from legalrag import cli
from legalrag.answer.assistant import DISCLAIMER, Answer, Assistant
from legalrag.answer.modelfile import smollm2_path
from legalrag.errors import LegalRagError, QueryError
from legalrag.index.build import build_index
from legalrag.index.store import IndexStore, read_manifest
from legalrag.numerals import to_chinese
from legalrag.records import Hit
from legalrag.retrieval.retriever import Retriever
from legalrag.vocab import LABELS

GOOD = ["社会法/劳动法(2018-12-29).md", "laws.sqlite3"]
MB = 1024 * 1024


def corpus_snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under root: size, modification time and sha256 of each file,
    the target of each symbolic link. Equal snapshots: nothing was written or deleted."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir",)
            else:
                st = path.stat()
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[rel] = ("file", st.st_size, st.st_mtime_ns, digest)
    return out


def huge_statute(size: int) -> bytes:
    """A well-formed statute file of at least size bytes (so only its size is wrong)."""
    body = "用人单位应当依法建立和完善劳动规章制度，保障劳动者享有劳动权利、履行劳动义务。" * 12
    lines = ["# 巨大条例", ""]
    total, n = 0, 0
    while total < size:
        n += 1
        line = f"第{to_chinese(n)}条 {body}"
        lines.append(line)
        total += len(line.encode()) + 1
    return "\n".join(lines).encode()


# file name under 用户上传/ -> (content, expected reason in the report or None if indexed)
BROKEN: dict[str, tuple[bytes, str]] = {
    "只有章节.md": ("# 只有章节的条例\n\n## 第一章 总则\n\n### 第一节 一般规定\n\n## 第二章 附则\n"
                    .encode(), "no articles"),
    "只有标题.md": ("# 只有标题的条例\n".encode(), "no articles"),
    "图片.md": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)),
                "binary file"),
    "国标编码.txt": ("# 物业管理条例\n第一条 为了规范物业管理活动，制定本条例。\n".encode("gbk"),
                     "not UTF-8"),
    "空.md": (b"", "no title"),
    "错号.md": ("# 错号条例\n第一条 甲。\n第二二条 乙。\n".encode(), "not a valid numeral"),
    "重号.md": ("# 重号条例\n第一条 甲。\n第二条 乙。\n第二条 丙。\n".encode(), "occurs twice"),
    "双字节.md": ("# 双字节条例\n第一条 甲。\n".encode("utf-16"), "binary file"),
}
OUT_OF_ORDER = "# 乱序条例\n第一条 甲。\n第三条 丙。\n第二条 乙。\n"


# The same law and version twice: one of the two is indexed, the other reported. (Which one
# is a policy of corpus.reconcile: today the path that sorts first, the upload.)
DUPLICATE = ("社会法/劳动法(2018-12-29).md", "用户上传/劳动法(2018-12-29).md")


def make_bad_corpus(root: Path) -> dict[str, str]:
    """GOOD plus every broken file (a 50 MB one and a duplicate law included); returns the
    expected {path: reason} of the skipped files, the duplicate pair aside."""
    copy_corpus(root, GOOD)
    user = root / "用户上传"
    user.mkdir()
    expected = {}
    for name, (content, reason) in BROKEN.items():
        (user / name).write_bytes(content)
        expected[f"用户上传/{name}"] = reason
    (user / "巨大.md").write_bytes(huge_statute(50 * MB))
    expected["用户上传/巨大.md"] = "larger than the 5 MB"
    shutil.copy2(CORPUS / GOOD[0], user / DUPLICATE[1].split("/")[1])
    (user / "乱序条例.md").write_text(OUT_OF_ORDER, encoding="utf-8")
    (root / "像文件的目录.md").mkdir()  # a folder with a statute's suffix is not a file
    return expected


@pytest.fixture
def bad(tmp_path):
    corpus = tmp_path / "corpus"
    expected = make_bad_corpus(corpus)
    return make_settings(tmp_path, corpus), expected


def test_every_bad_file_is_reported_by_the_cli_and_the_rest_indexed(bad, capsys):
    settings, expected = bad
    before = corpus_snapshot(settings.corpus_dir)
    assert before["用户上传/巨大.md"][1] >= 50 * MB

    code = cli.main(["--corpus", str(settings.corpus_dir), "--index-dir",
                     str(settings.index_dir), "index", "build", "--no-dense", "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    skipped = dict(re.findall(r"^skipped ([^:]+?)(?::\d+)?: (.*)$", err, re.M))
    assert_reported(skipped, expected)
    assert "fix: re-save the file as UTF-8" in skipped["用户上传/国标编码.txt"]
    assert "warning 用户上传/乱序条例.md:4: article 第二条 follows 第三条: out of order" in err
    assert "Traceback" not in err
    assert "2 laws" in out and f"{len(expected) + 1} files skipped" in out

    r = Retriever.open(settings)
    assert sorted({a.law for a in r.articles}) == ["乱序条例", "劳动法"]
    assert len(r.articles) == 107 + 3
    assert [a.text for a in r.lookup("乱序条例", 2)] == ["乙。"]
    assert r.search("劳动法第五十条", k=1)[0].article.citation == "《劳动法》第五十条"
    manifest = read_manifest(IndexStore(settings.index_dir).current())
    assert len(manifest["corpus"]["skipped"]) == len(expected) + 1  # kept for `index info`
    assert corpus_snapshot(settings.corpus_dir) == before


def assert_reported(skipped: dict[str, str], expected: dict[str, str]) -> None:
    """skipped ({path: reason}) holds every expected file with its reason, and exactly one
    of the duplicate pair, naming the other."""
    (dup,) = set(skipped) - set(expected)
    assert dup in DUPLICATE
    other = DUPLICATE[1 - DUPLICATE.index(dup)]
    assert f"duplicate law: 《劳动法》第一条 (version 2018-12-29) is already in {other}" in (
        skipped[dup])
    assert skipped.keys() - {dup} == expected.keys()
    for path, reason in expected.items():
        assert reason in skipped[path], (path, skipped[path])


def test_update_and_failed_build_leave_the_corpus_byte_identical(bad):
    settings, expected = bad
    before = corpus_snapshot(settings.corpus_dir)
    build_index(settings, dense=False)
    assert corpus_snapshot(settings.corpus_dir) == before

    result = build_index(settings, update=True, dense=False)
    assert result.up_to_date
    assert_reported({e.path: e.reason for e in result.report.skipped}, expected)
    assert corpus_snapshot(settings.corpus_dir) == before

    live = IndexStore(settings.index_dir).current_name()

    class Failure(RuntimeError):
        pass

    def fail(stage: str, total: int):
        raise Failure(stage)

    (settings.corpus_dir / "新条例.md").write_text("# 新条例\n第一条 新。\n", encoding="utf-8")
    before = corpus_snapshot(settings.corpus_dir)
    with pytest.raises(Failure):
        build_index(settings, update=True, dense=False, progress=fail)
    assert IndexStore(settings.index_dir).current_name() == live
    assert corpus_snapshot(settings.corpus_dir) == before

    result = build_index(settings, update=True, dense=False)
    assert result.changed_files == ["新条例.md"]
    assert corpus_snapshot(settings.corpus_dir) == before


def test_a_corpus_with_nothing_usable_is_one_clear_error(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, (content, _) in BROKEN.items():
        (corpus / name).write_bytes(content)
    before = corpus_snapshot(corpus)
    settings = make_settings(tmp_path, corpus)
    with pytest.raises(LegalRagError, match=f"no articles found in .*{len(BROKEN)} files skipped"):
        build_index(settings, dense=False)
    code = cli.main(["--corpus", str(corpus), "--index-dir", str(settings.index_dir),
                     "index", "build", "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("legalrag: error: no articles found")
    assert IndexStore(settings.index_dir).current_name() is None
    assert corpus_snapshot(corpus) == before


# -- bad questions ------------------------------------------------------------------------------

LONG = "我在公司工作了三年，公司突然以经营困难为由把我辞退，没有提前通知也不给补偿，" * 600
QUESTIONS = {
    "empty": "",
    "whitespace": " \t\n\u3000 ",
    "zero-width only": "\u200b\u200c\ufeff",
    "20,000 characters": LONG[:20_000],
    "emoji only": "😡😡⚖️🏢💰❓",
    "mixed scripts": "劳动合同 labour contract расторжение 労働契約 解除 😀 ٢٠٢٤",
    "control characters": "试用期\x00最长\x1b[31m多久\x7f？\u202e",
    "lone surrogate": "公司拖欠\ud800工资怎么办",
    "English": "Can my employer fire me without notice during the probation period?",
}
# What the retriever does with each: "hits" (a non-empty list), "list" (possibly empty) or
# "empty" (QueryError saying the question is empty).
SEARCH_OUTCOME = {"empty": "empty", "whitespace": "empty", "zero-width only": "empty",
                  "20,000 characters": "hits", "emoji only": "list", "mixed scripts": "hits",
                  "control characters": "hits", "lone surrogate": "hits", "English": "list"}


@pytest.mark.parametrize("case", list(QUESTIONS))
def test_bad_questions_through_search(small_index, case):
    question = QUESTIONS[case]
    for mode in ("hybrid", "bm25", "dense"):
        if SEARCH_OUTCOME[case] == "empty":
            with pytest.raises(QueryError, match="the question is empty") as err:
                small_index.search(question, k=5, mode=mode)
            assert err.value.fix  # says what to type instead
            continue
        hits = small_index.search(question, k=5, mode=mode)
        assert isinstance(hits, list) and len(hits) <= 5
        assert all(isinstance(h, Hit) for h in hits)
        if SEARCH_OUTCOME[case] == "hits":
            assert hits, (case, mode)


@pytest.fixture(scope="module")
def smol_settings(small_settings):
    return dataclasses.replace(small_settings, llm_model_path=str(smollm2_path()),
                               llm_context=2048, llm_max_tokens=32, llm_temperature=0.0,
                               answer_source_tokens=500)


# QueryError message for the questions the assistant refuses; the others get an Answer.
ASSISTANT_REFUSES = {
    "empty": "the question is empty",
    "whitespace": "the question is empty",
    # invisible format characters are dropped (assistant.plain_question): nothing is left
    "zero-width only": "the question is empty",
    "20,000 characters": "the question is 20000 characters long; the limit is 1000",
    "control characters": "control characters (U+0000, U+001B, U+007F)",  # U+202E dropped
    "lone surrogate": "control characters (U+D800)",
    # the statutes are Chinese: told to ask in Chinese, not "nothing relevant found"
    "emoji only": "the question has no Chinese characters",
    "English": "the question has no Chinese characters",
}


@pytest.mark.parametrize("case", list(QUESTIONS))
def test_bad_questions_through_the_assistant(smol_settings, small_index, case):
    assistant = Assistant(smol_settings, retriever=small_index)
    question = QUESTIONS[case]
    if case in ASSISTANT_REFUSES:
        with pytest.raises(QueryError) as err:
            assistant.answer(question)
        assert ASSISTANT_REFUSES[case] in str(err.value)
        assert err.value.fix
        return
    answer = assistant.answer(question)
    assert isinstance(answer, Answer)
    assert answer.text.strip() and answer.text.endswith(DISCLAIMER)
    assert all(c.label in LABELS for c in answer.citations)


@pytest.mark.parametrize("case", [*QUESTIONS, "not text"])
def test_bad_questions_through_the_chat_service(smol_settings, case):
    from legalrag.answer.llm import load_chat_model
    from legalrag.web.chat import ChatService
    from legalrag.web.session import ChatSession

    service = ChatService(smol_settings, model=load_chat_model(smol_settings))
    session = ChatSession()
    question = QUESTIONS.get(case, None)
    views = list(service.respond(session, question))  # a generator that must not raise
    last = views[-1].messages[-1]
    assert last["role"] == "assistant"
    (ex,) = session.exchanges
    if case in ASSISTANT_REFUSES or case == "not text":
        assert ex.state == "error" and 'class="lr-error"' in last["content"]
        assert "内部错误" not in ex.error and "Traceback" not in last["content"]
    else:
        assert ex.state == "done" and ex.answer is not None
    if case == "20,000 characters":
        assert "问题太长（20,000 字，上限 1,000 字）" in ex.error
        assert len(views[-1].messages[0]["content"]) < 2100  # not echoed back whole


@pytest.mark.parametrize("argv, message", [
    (["retrieve", ""], "legalrag: error: the question is empty"),
    (["retrieve", "\u200b"], "legalrag: error: the question is empty"),
    (["retrieve", "劳动", "-k", "0"], "legalrag: error: k = 0 is out of range"),
    (["retrieve", "劳动", "--mode", "dense", "-k", "100000"],
     "legalrag: error: k = 100000 is out of range"),
    (["ask", LONG[:20_000]], "legalrag: error: the question is 20000 characters long"),
    (["ask", "试用期\x1b多久"], "legalrag: error: the question contains control characters"),
])
def test_bad_questions_through_the_cli_are_one_line_and_exit_2(small_settings, capsys, argv,
                                                                 message):
    code = cli.main(["--corpus", str(small_settings.corpus_dir), "--index-dir",
                     str(small_settings.index_dir), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(message) and err.count("\n") == 1


def test_retrieve_cli_answers_mixed_scripts_and_english(small_settings, capsys):
    for question in (QUESTIONS["mixed scripts"], QUESTIONS["English"], QUESTIONS["emoji only"]):
        code = cli.main(["--corpus", str(small_settings.corpus_dir), "--index-dir",
                         str(small_settings.index_dir), "retrieve", question, "--json"])
        assert code == 0
        assert "Traceback" not in capsys.readouterr().err
