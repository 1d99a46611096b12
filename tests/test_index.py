"""Index build → query → update → query on real files with the real model; failures leave
the live index serving; mismatched and corrupted indexes are refused with the fix named."""

import shutil

import pytest
from conftest import CORPUS, copy_corpus, make_settings

from legalrag.errors import IndexBusyError, IndexCorruptError, IndexMismatchError
from legalrag.index.build import build_index
from legalrag.index.store import IndexStore
from legalrag.retrieval.retriever import Retriever

BASE = ["社会法/劳动法(2018-12-29).md", "laws.sqlite3"]
NEW_LAW = "行政法规/个体工商户条例(2016-02-06).md"


@pytest.fixture
def env(tmp_path):
    corpus = copy_corpus(tmp_path / "corpus", BASE)
    return make_settings(tmp_path, corpus), corpus


def citations(settings, query, k=5):
    return [h.article.citation for h in Retriever.open(settings).search(query, k=k)]


def test_build_query_update_query(env):
    settings, corpus = env
    first = build_index(settings)
    assert first.parts == ["lookup", "bm25", "dense"]
    assert first.embedded == 107 and first.reused == 0
    assert "《个体工商户条例》第二条" not in citations(settings, "个体工商户条例第二条")

    shutil.copy2(CORPUS / NEW_LAW, corpus / "个体工商户条例(2016-02-06).md")
    second = build_index(settings, update=True)
    assert second.changed_files == ["个体工商户条例(2016-02-06).md"]
    assert second.reused == 107  # unchanged articles are never re-embedded
    assert second.embedded == len(second.report.articles) - 107 > 0
    assert citations(settings, "个体工商户条例第二条")[0] == "《个体工商户条例》第二条"
    assert any("个体工商户条例" in c for c in citations(settings, "个体工商户登记需要什么材料", 10))

    assert build_index(settings, update=True).up_to_date

    (corpus / "个体工商户条例(2016-02-06).md").unlink()
    third = build_index(settings, update=True)
    assert third.removed_files == ["个体工商户条例(2016-02-06).md"]
    assert third.embedded == 0
    assert not any("个体工商户条例" in c for c in citations(settings, "个体工商户条例第二条"))
    # the live build and the previous complete one (kept for a fallback after a power cut)
    store = IndexStore(settings.index_dir)
    builds = sorted(b.name for b in (settings.index_dir / "builds").iterdir())
    assert builds == sorted(p.name for p in store.complete_builds()[:2])
    assert store.current_name() in builds


def test_an_update_rereads_files_a_new_parser_reads_differently(env, monkeypatch):
    """The files are the same, the parser is not (a title written without its '#' now heads
    the articles after it): an update is not 'up to date', and re-embeds only what changed."""
    import re

    from legalrag.index import corpus as corpus_module

    settings, corpus = env
    (corpus / "测试条例.md").write_text(
        "# 测试条例\n<!-- INFO END -->\n## 第一章 总则\n第一条 养犬人应当束犬链。\n"
        "法律责任\n第二条 违反本条例的，予以警告。\n", encoding="utf-8")
    with monkeypatch.context() as m:  # the parser before titles without '#'
        m.setattr(corpus_module, "BARE_HEADING_RE", re.compile(r"(?!)"))
        first = build_index(settings)
    second = build_index(settings, update=True)
    assert not second.up_to_date and second.reparsed and second.changed_files == []
    assert second.embedded == 2 and second.reused == first.embedded - 2
    rows = {a.number: a for a in Retriever.open(settings).articles if a.law == "测试条例"}
    assert rows[1].text == "养犬人应当束犬链。" and rows[2].path == ("法律责任",)
    assert build_index(settings, update=True).up_to_date


def test_first_build_serves_bm25_before_dense_is_done(env):
    settings, _ = env
    seen = {}

    def progress(stage, total):
        if stage == "embed":
            r = Retriever.open(settings)
            seen["parts"] = sorted(r.parts)
            seen["top"] = r.search("劳动法第五十条", k=1)[0].article.citation
            seen["hybrid"] = r.search("拖欠工资", k=3)
        return lambda n: None

    build_index(settings, progress=progress)
    assert seen["parts"] == ["bm25", "lookup"]
    assert seen["top"] == "《劳动法》第五十条"
    assert all(set(h.ranks) <= {"bm25", "lookup"} for h in seen["hybrid"])
    assert "dense" in Retriever.open(settings).parts


def test_a_text_repeated_across_versions_is_embedded_once(env):
    settings, corpus = env
    # An older version whose text no revision changed: the same articles, twice.
    law = corpus / "社会法"
    shutil.copy2(law / "劳动法(2018-12-29).md", law / "劳动法(2009-08-27).md")
    totals = {}

    def progress(stage, total):
        totals[stage] = total
        return lambda n: None

    result = build_index(settings, progress=progress)
    assert len(result.report.articles) == 214 and result.report.in_force == 107
    assert totals["embed"] == 107
    hits = Retriever.open(settings).search("拖欠工资", k=6, mode="dense", include_old=True)
    by_number: dict[int, set[float]] = {}
    for h in hits:
        by_number.setdefault(h.article.number, set()).add(round(h.scores["dense"], 6))
    versions = {h.article.version for h in hits}
    assert versions == {"2018-12-29", "2009-08-27"}, versions
    assert all(len(s) == 1 for s in by_number.values()), by_number


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("stage", ["segment", "embed"])
def test_failure_mid_build_leaves_the_previous_index_serving(env, stage):
    settings, corpus = env
    build_index(settings)
    live = IndexStore(settings.index_dir).current_name()
    before = citations(settings, "拖欠工资")
    shutil.copy2(CORPUS / NEW_LAW, corpus / "新.md")
    corpus_before = {p: p.read_bytes() for p in corpus.rglob("*") if p.is_file()}

    def explode(name, total):
        if name == stage:
            raise Boom(name)
        return lambda n: None

    with pytest.raises(Boom):
        build_index(settings, update=stage == "segment", progress=explode)
    assert IndexStore(settings.index_dir).current_name() == live
    assert citations(settings, "拖欠工资") == before
    assert {p: p.read_bytes() for p in corpus.rglob("*") if p.is_file()} == corpus_before
    after = build_index(settings, update=True)  # the next run succeeds and cleans up
    assert after.changed_files == ["新.md"]
    assert len(list((settings.index_dir / "builds").iterdir())) == 2  # live + previous
    assert not list((settings.index_dir / "builds").glob("tmp-*"))


def test_index_built_with_another_model_is_refused(env):
    settings, _ = env
    build_index(settings, dense=False)
    other = make_settings(settings.index_dir.parent, settings.corpus_dir, embedding_max_length=128)
    with pytest.raises(IndexMismatchError, match="legalrag index build"):
        Retriever.open(other)
    with pytest.raises(IndexMismatchError, match="legalrag index build"):
        build_index(other, update=True)


@pytest.mark.parametrize("victim", ["articles.json", "bm25/vocab.index.json", "dense.faiss"])
def test_corrupted_or_truncated_file_is_detected(env, victim):
    """With no other complete build to fall back to, a damaged file is refused with the
    command that fixes it (the fallback to a kept build is tests/test_faults.py's)."""
    settings, _ = env
    build_index(settings)
    store = IndexStore(settings.index_dir)
    for build in store.builds.iterdir():  # the sparse build published first, kept since
        if build.name != store.current().name:
            shutil.rmtree(build)
    path = store.current() / victim
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexCorruptError, match="legalrag index build") as err:
        Retriever.open(settings)
    assert victim.split("/")[-1] in str(err.value)


def test_missing_index_names_the_command(env):
    settings, _ = env
    with pytest.raises(Exception, match="legalrag index build"):
        Retriever.open(settings)


def test_one_writer_at_a_time(env):
    settings, _ = env
    with IndexStore(settings.index_dir).lock():
        with pytest.raises(IndexBusyError):
            build_index(settings)


def test_build_over_an_index_of_another_model_serves_bm25_early(env):
    settings, _ = env
    other = make_settings(settings.index_dir.parent, settings.corpus_dir, embedding_max_length=128)
    build_index(other)  # a complete index, but for another configuration
    seen = {}

    def progress(stage, total):
        if stage == "embed":
            seen["parts"] = sorted(Retriever.open(settings).parts)
        return lambda n: None

    build_index(settings, progress=progress)
    assert seen["parts"] == ["bm25", "lookup"]
