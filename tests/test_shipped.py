"""Shipped article vectors (index/shipped.py): a first build takes them for the texts they
hold and embeds the rest with the real model; vectors that disagree with this machine's
embedding, a file of another model and an unreadable file are refused with a warning and
cost nothing but the time to embed. The repository's own file is checked against its
corpus and the default model."""

import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import CORPUS, ROOT, copy_corpus, make_settings

from legalrag.config import Settings
from legalrag.index.build import build_index, content_key, embed_text
from legalrag.index.corpus import parse_corpus
from legalrag.index.embed import embedder_identity, load_embedder
from legalrag.index.shipped import locate, read_shipped, usable, write_shipped
from legalrag.retrieval.retriever import Retriever

BASE = ["社会法/劳动法(2018-12-29).md", "laws.sqlite3"]
NEW_LAW = "行政法规/个体工商户条例(2016-02-06).md"
QUESTION = "用人单位拖欠工资，劳动者可以解除劳动合同吗？"


def live_vectors(settings) -> tuple[dict[str, np.ndarray], dict]:
    """Content key -> vector of a built index, and its embedder identity."""
    r = Retriever.open(settings, verify=False)
    vectors = r.dense.reconstruct_n(0, r.dense.ntotal)
    keys = [content_key(embed_text(a)) for a in r.articles]
    return dict(zip(keys, vectors, strict=True)), r.manifest["embedding"]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The vectors of a build of 劳动法 alone, written as a shipped file."""
    tmp = tmp_path_factory.mktemp("ship")
    settings = make_settings(tmp, copy_corpus(tmp / "corpus", BASE))
    build_index(settings)
    vectors, identity = live_vectors(settings)
    path = tmp / "vectors.npz"
    write_shipped(path, list(vectors), np.stack(list(vectors.values())), identity)
    return path, vectors, identity, settings


def corpus_with_new_law(tmp_path):
    corpus = copy_corpus(tmp_path / "corpus", BASE)
    shutil.copy2(CORPUS / NEW_LAW, corpus / "个体工商户条例(2016-02-06).md")
    return corpus


def test_a_first_build_takes_shipped_vectors_and_embeds_only_new_texts(shipped, tmp_path):
    path, original, _, _ = shipped
    settings = make_settings(tmp_path, corpus_with_new_law(tmp_path), shipped_vectors=str(path))
    result = build_index(settings)
    assert result.shipped == 107  # every 劳动法 article, none of the new law's
    assert result.embedded == len(result.report.articles) - 107 > 0
    assert "shipped 107" in result.summary()
    vectors, _ = live_vectors(settings)
    cos = [float(vectors[k] @ v) for k, v in original.items()]
    assert min(cos) > 0.999  # int8 with a scale per vector
    new = [k for k in vectors if k not in original]
    assert new and all(abs(np.linalg.norm(vectors[k]) - 1) < 1e-3 for k in new)
    # a question scores every article as over a build that embedded everything (int8
    # moves a cosine by well under 0.01; near ties may still swap)
    plain = make_settings(tmp_path / "plain", corpus_with_new_law(tmp_path / "plain"))
    build_index(plain)
    embedded, _ = live_vectors(plain)
    q = Retriever.open(plain).embedder.encode([QUESTION])[0]
    diff = max(abs(float(vectors[k] @ q) - float(embedded[k] @ q)) for k in embedded)
    assert diff < 0.01


def test_shipped_vectors_that_disagree_with_this_machine_are_not_taken(shipped, tmp_path,
                                                                        caplog):
    path, original, identity, _ = shipped
    keys = list(original)
    rolled = np.roll(np.stack(list(original.values())), 1, axis=0)  # each text, another's
    bad = tmp_path / "bad.npz"
    write_shipped(bad, keys, rolled, identity)
    settings = make_settings(tmp_path, copy_corpus(tmp_path / "corpus", BASE),
                             shipped_vectors=str(bad))
    with caplog.at_level(logging.WARNING, logger="legalrag.index.shipped"):
        result = build_index(settings)
    assert result.shipped == 0 and result.embedded == 107
    assert "disagree with this machine's embedding" in caplog.text
    vectors, _ = live_vectors(settings)
    assert min(float(vectors[k] @ original[k]) for k in keys) > 0.999  # embedded afresh


@pytest.mark.parametrize("damage", ["garbage", "truncated", "text keys", "other model",
                                    "missing"])
def test_a_foreign_or_unreadable_shipped_file_is_ignored(shipped, tmp_path, caplog, damage):
    path, original, identity, _ = shipped
    target = tmp_path / "vectors.npz"
    if damage == "garbage":
        target.write_bytes(b"not a numpy file")
    elif damage == "truncated":  # a download or copy cut short
        target.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "text keys":  # an npz of the right arrays, but not ours
        with np.load(path) as f:
            arrays = dict(f)
        np.savez_compressed(target, **{**arrays, "keys": arrays["keys"].astype("U24")})
    elif damage == "other model":
        other = {**identity, "name": "m3e-small@torch-fp32/256"}
        write_shipped(target, list(original), np.stack(list(original.values())), other)
    settings = make_settings(tmp_path, copy_corpus(tmp_path / "corpus", BASE),
                             shipped_vectors=str(target))
    with caplog.at_level(logging.INFO, logger="legalrag.index.shipped"):
        result = build_index(settings)
    assert result.shipped == 0 and result.embedded == 107
    assert result.parts == ["lookup", "bm25", "dense"]
    expected = {"garbage": "cannot be read", "truncated": "cannot be read",
                "text keys": "cannot be read",
                "other model": "were made by m3e-small@torch",
                "missing": "no shipped vectors"}[damage]
    assert expected in caplog.text
    if damage == "garbage":
        assert target.read_bytes() == b"not a numpy file"  # left as it was


def test_rows_that_are_not_finite_or_zero_are_embedded(shipped, tmp_path, caplog):
    path, original, _, _ = shipped
    target = tmp_path / "vectors.npz"
    with np.load(path) as f:
        arrays = dict(f)
    arrays["scales"][:5] = np.nan
    arrays["vectors"][5:8] = 0
    np.savez_compressed(target, **arrays)
    settings = make_settings(tmp_path, copy_corpus(tmp_path / "corpus", BASE),
                             shipped_vectors=str(target))
    with caplog.at_level(logging.WARNING, logger="legalrag.index.shipped"):
        result = build_index(settings)
    assert "8 rows are not finite or zero" in caplog.text
    assert result.shipped == 99 and result.embedded == 8
    vectors, _ = live_vectors(settings)
    assert all(np.isfinite(v).all() for v in vectors.values())
    # int8 rows, and rows embedded in other batches (int8 activations are scaled per batch)
    assert min(float(v @ original[k]) for k, v in vectors.items()) > 0.99


def test_ship_vectors_writes_the_live_index_for_the_next_first_build(shipped, tmp_path):
    _, original, identity, settings = shipped
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGALRAG_")}
    env.update(HF_HUB_OFFLINE="1", LEGALRAG_CORPUS_DIR=str(settings.corpus_dir),
               LEGALRAG_INDEX_DIR=str(settings.index_dir),
               LEGALRAG_CACHE_DIR=str(settings.cache_dir))
    out = tmp_path / "written.npz"
    done = subprocess.run([sys.executable, str(ROOT / "scripts/ship_vectors.py"), "--out",
                           str(out)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "107 vectors of m3e-small@onnx-int8/256 written" in done.stdout
    written = read_shipped(out, identity)
    assert written.keys() == original.keys()
    assert min(float(written[k] @ v) for k, v in original.items()) > 0.999


def test_the_repositorys_file_covers_its_corpus_and_agrees_with_this_machine():
    """Fails when the corpus or the embedding model changed and the file was not written
    again (run scripts/ship_vectors.py after a full build), or when this machine's
    embedding disagrees with it, so that every first build here embeds everything."""
    defaults = Settings.load(env={})
    path = locate(defaults.shipped_vectors)
    vectors = read_shipped(path, embedder_identity(defaults))
    assert vectors, f"{path} is missing or was made by another embedder"
    texts = {content_key(t): t for t in map(embed_text, parse_corpus(ROOT / "corpus").articles)}
    covered = len(texts.keys() & vectors.keys()) / len(texts)
    assert covered > 0.95, f"{path} holds {covered:.1%} of the corpus's texts"
    got = usable(vectors, dict(list(texts.items())[::500]), load_embedder(defaults).encode)
    assert got.vectors, f"this machine's embedding disagrees (cosine {got.min_cosine:.3f})"
