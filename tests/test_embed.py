"""The embedding adapter: int8 ONNX against the fp32 reference, and the fp32 fallback."""

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import make_settings

from legalrag.index.embed import (
    TorchEmbedder,
    embedder_identity,
    embedding_model_dir,
    load_embedder,
)

TEXTS = ["劳动合同的解除和终止", "老板拖欠工资不发怎么办？", "醉酒驾驶机动车的，处拘役，并处罚金。"]


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("embed")
    return make_settings(tmp, tmp / "corpus")


def test_int8_stays_close_to_fp32_and_is_normalized(settings):
    int8 = load_embedder(settings).encode(TEXTS)
    fp32 = load_embedder(replace(settings, embedding_backend="torch")).encode(TEXTS)
    assert int8.shape == fp32.shape == (3, 512)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert ((int8 * fp32).sum(axis=1) > 0.95).all()
    # order is kept although batches are sorted by length
    assert (int8[0] @ int8[0]) > (int8[0] @ int8[2])


def test_identity_names_backend_and_length(settings):
    ident = embedder_identity(settings)
    assert ident["name"] == "m3e-small@onnx-int8/256" and ident["dim"] == 512
    assert embedder_identity(replace(settings, embedding_max_length=128))["name"].endswith("/128")


def test_a_rejected_int8_export_falls_back_to_fp32(tmp_path, caplog):
    # A cache whose export was rejected for drifting: the model must still embed (fp32).
    from legalrag.index.embed import model_fingerprint

    settings = make_settings(tmp_path, tmp_path / "corpus", cache_dir=tmp_path / "cache",
                             embedding_batch_size=7)
    path = embedding_model_dir(settings.embedding_model)
    out = (settings.cache_dir / "onnx" /
           f"{path.name}-{model_fingerprint(path)}-{settings.embedding_max_length}")
    out.mkdir(parents=True)
    (out / "export.json").write_text(json.dumps(
        {"min_cosine": 0.9, "mean_cosine": 0.93, "dim": 512, "rejected": True}))
    with caplog.at_level("INFO", logger="legalrag.index.embed"):
        emb = load_embedder(settings)
    assert isinstance(emb, TorchEmbedder)
    assert emb.encode(TEXTS).shape == (3, 512)
    # the export warned when it was rejected; a later load only notes the fallback
    notes = [r for r in caplog.records if "drifted" in r.getMessage()]
    assert notes and all(r.levelname == "INFO" for r in notes)
    # and loads without drawing transformers' "Loading weights" bar
    from transformers.utils import logging as hf_logging

    assert not hf_logging.is_progress_bar_enabled()
