"""Settings validated in one place (issue 14): types, ranges, `~` expansion, unknown keys
named with the closest valid one, each a ConfigError that names the setting and the fix;
and the load order: defaults < TOML file < LEGALRAG_* environment < overrides (flags)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from legalrag.config import Settings
from legalrag.errors import ConfigError

pytestmark = pytest.mark.fast


def load(tmp_path: Path, toml: str = "", env: dict | None = None, **overrides) -> Settings:
    cfg = tmp_path / "legalrag.toml"
    cfg.write_text(toml, encoding="utf-8")
    return Settings.load(cfg, env=env or {}, **overrides)


def test_load_order_file_then_environment_then_flags(tmp_path):
    toml = "[legalrag]\ntop_k = 7\nport = 8001\nllm_threads = 3\n"
    s = load(tmp_path, toml)
    assert (s.top_k, s.port, s.llm_threads) == (7, 8001, 3)
    s = load(tmp_path, toml, env={"LEGALRAG_PORT": "8002", "LEGALRAG_LLM_THREADS": "2"})
    assert (s.top_k, s.port, s.llm_threads) == (7, 8002, 2)
    s = load(tmp_path, toml, env={"LEGALRAG_PORT": "8002", "LEGALRAG_LLM_THREADS": "2"},
             llm_threads=1, top_k=None)  # None: the flag was not given
    assert (s.top_k, s.port, s.llm_threads) == (7, 8002, 1)
    assert Settings.load(env={"LEGALRAG_CONFIG": str(tmp_path / "legalrag.toml")}).port == 8001


def test_a_toml_file_without_the_table_header_works_too(tmp_path):
    assert load(tmp_path, "top_k = 9\n").top_k == 9


def test_paths_expand_the_home_directory(tmp_path):
    s = load(tmp_path, 'corpus_dir = "~/statutes"\n', env={"LEGALRAG_INDEX_DIR": "~/idx"},
             llm_model_path="~/m.gguf", data_dir=Path("~/userdata"))
    home = Path.home()
    assert s.index_dir == home / "idx" and s.corpus_dir == home / "statutes"
    assert s.llm_model_path == str(home / "m.gguf") and s.data_dir == home / "userdata"
    assert "~" not in str(s.index_dir)


@pytest.mark.parametrize(("where", "key", "hint"), [
    ("file", "llm_thread", "llm_threads"),
    ("file", "topk", "top_k"),
    ("override", "index_directory", "index_dir"),
    ("file", "zzz_nothing_like_it", None),
])
def test_an_unknown_setting_is_named_with_the_closest_valid_one(tmp_path, where, key, hint):
    with pytest.raises(ConfigError) as err:
        if where == "file":
            load(tmp_path, f"{key} = 1\n")
        else:
            load(tmp_path, **{key: 1})
    msg = str(err.value)
    assert repr(key) in msg and "fix: use one of:" in msg
    assert (f"did you mean {hint}?" in msg) if hint else "did you mean" not in msg


@pytest.mark.fast
@pytest.mark.parametrize("old,new", [("abstain_min_dense_base", "abstain_min_dense"),
                                     ("abstain_min_bm25_base", "abstain_min_bm25")])
def test_a_setting_that_was_replaced_names_its_successor(tmp_path, old, new):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, f"{old} = 0.5\n")
    assert f"{old!r} (replaced by {new}:" in str(err.value)


def test_an_unknown_environment_variable_is_logged_with_the_closest_name(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="legalrag.config"):
        load(tmp_path, env={"LEGALRAG_LLM_THREAD": "2", "LEGALRAG_VENV": ".venv"})
    assert "LEGALRAG_LLM_THREAD is not a legalrag setting" in caplog.text
    assert "did you mean LEGALRAG_LLM_THREADS?" in caplog.text
    assert "LEGALRAG_VENV" not in caplog.text


@pytest.mark.parametrize(("variables", "message"), [
    ({"LEGALRAG_LLM_THREADS": "-3"}, "llm_threads = -3 is out of range: it must be between 0"),
    ({"LEGALRAG_LLM_MAX_TOKENS": "100000"}, "llm_max_tokens 100000 does not fit in llm_context"),
    ({"LEGALRAG_LLM_MAX_TOKENS": "0"}, "llm_max_tokens = 0 is out of range"),
    ({"LEGALRAG_PORT": "70000"}, "port = 70000 is out of range: it must be between 1 and 65535"),
    ({"LEGALRAG_PORT": "0"}, "port = 0 is out of range"),
    ({"LEGALRAG_PORT": "eighty"}, "setting port = 'eighty' is not a valid int"),
    ({"LEGALRAG_TOP_K": "2.5"}, "setting top_k = '2.5' is not a valid int"),
    ({"LEGALRAG_LLM_TEMPERATURE": "nan"}, "llm_temperature = nan is out of range"),
    ({"LEGALRAG_LLM_TEMPERATURE": "5"}, "llm_temperature = 5.0 is out of range"),
    ({"LEGALRAG_LOG_QUESTIONS": "maybe"}, "log_questions = 'maybe' is not a valid bool"),
    ({"LEGALRAG_LLM_CONTEXT": "64"}, "llm_context = 64 is out of range"),
    ({"LEGALRAG_EMBEDDING_BATCH_SIZE": "0"}, "embedding_batch_size = 0 is out of range"),
    ({"LEGALRAG_ANSWER_TOP_K": "21"}, "answer_top_k = 21 is out of range"),
    ({"LEGALRAG_MAX_UPLOAD_BYTES": "-1"}, "max_upload_bytes = -1 is out of range"),
    ({"LEGALRAG_RETRIEVAL_MODE": "magic"}, "retrieval_mode 'magic' is not one of"),
    ({"LEGALRAG_LLM_BACKEND": "gpt"}, "llm_backend 'gpt' is not one of llama, http"),
    ({"LEGALRAG_AUTH_USER": "me"}, "login needs both auth_user and auth_password"),
    ({"LEGALRAG_INDEX_DIR": " "}, "setting index_dir = ' ' is not a valid path"),
    ({"LEGALRAG_HOST": " "}, "setting host is empty"),
    ({"LEGALRAG_API_TOKEN": "my token"}, "api_token contains spaces, quotes or characters "
                                         "outside ASCII"),
    ({"LEGALRAG_API_TOKEN": "令牌123"}, "cannot be sent in an Authorization header (fix: use "
                                      "letters, digits"),
    ({"LEGALRAG_API_MAX_REQUEST_BYTES": "0"}, "api_max_request_bytes = 0 is out of range"),
    ({"LEGALRAG_API_MAX_REQUEST_BYTES": "5000"}, "api_max_request_bytes = 5000 is too small for "
                                                 "a question of max_question_chars = 1000 "
                                                 "characters (a request needs up to 7024 bytes)"),
    ({"LEGALRAG_DATA_DIR": " "}, "setting data_dir = ' ' is not a valid path"),
])
def test_each_bad_value_is_a_config_error_naming_the_setting(tmp_path, variables, message):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, env=variables)
    assert message in str(err.value)


@pytest.mark.parametrize(("toml", "message"), [
    ("top_k = true\n", "setting top_k = True is not a valid int"),
    ("top_k = 2.5\n", "setting top_k = 2.5 is not a valid int"),
    ("host = 127\n", "setting host = 127 is not text"),
    ("corpus_dir = 3\n", "setting corpus_dir = 3 is not a valid path"),
    ("top_k = \n", "is not valid TOML"),
    ("legalrag = 3\n", "[legalrag] must be a table of settings"),
])
def test_bad_types_in_the_file_are_config_errors(tmp_path, toml, message):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, toml)
    assert message in str(err.value)


def test_a_missing_config_file_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*unset LEGALRAG_CONFIG"):
        Settings.load(env={"LEGALRAG_CONFIG": str(tmp_path / "nope.toml")})


def test_defaults_are_valid_and_types_survive(tmp_path):
    s = load(tmp_path, env={"LEGALRAG_LLM_TEMPERATURE": "0.3", "LEGALRAG_LOG_QUESTIONS": "yes",
                            "LEGALRAG_LLM_THREADS": "0"})
    assert s.llm_temperature == 0.3 and s.log_questions is True and s.llm_threads == 0
    Settings().validate()


def test_data_dir_is_a_folder_of_its_own(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "indexes"
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    for data, message in [
        (tmp_path / "notes.txt", "data_dir = '{}' is a file, not a folder (fix: set data_dir"),
        (corpus / "userdata", "is inside corpus_dir = '{}': the conversations must not mix "
                              "with the statutes (fix: set data_dir (LEGALRAG_DATA_DIR)"),
        (index, "is inside index_dir = '{}': the conversations must not mix with the index"),
    ]:
        with pytest.raises(ConfigError) as err:
            load(tmp_path, corpus_dir=corpus, index_dir=index, data_dir=data)
        place = data if "file" in message else corpus if "corpus" in message else index
        assert message.format(place.resolve() if "inside" in message else place) in str(err.value)
    ok = load(tmp_path, corpus_dir=corpus, index_dir=index, data_dir=tmp_path / "userdata",
              api_token="Zx-9_a.b~c+d/e==", api_max_request_bytes=7024)
    assert ok.api_token == "Zx-9_a.b~c+d/e=="
