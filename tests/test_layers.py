"""The layering contracts of pyproject.toml hold for the package, and they catch an import
that runs the wrong way (planted in a copy of the package)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(src: Path, cwd: Path) -> subprocess.CompletedProcess:
    """lint-imports over the package found under src, with the repository's contracts."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(LINT), str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("copy") / "src"
    shutil.copytree(ROOT / "src" / "legalrag", src / "legalrag",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return src


def plant(src: Path, module: str, line: str) -> None:
    path = src / "legalrag" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_the_package_keeps_its_contracts(package_copy, tmp_path):
    result = lint(package_copy, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("index/corpus.py", "from legalrag.retrieval import rerank", "Stages import downwards"),
    ("retrieval/fusion.py", "from legalrag.answer import prompt", "Stages import downwards"),
    ("records.py", "from legalrag.index import store", "Stages import downwards"),
    ("answer/check.py", "import gradio", "Only the web stage imports gradio"),
    ("index/store.py", "import argparse", "Only the CLI imports argparse"),
])
def test_a_wrong_way_import_breaks_a_contract(tmp_path, module, line, contract):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "legalrag", src / "legalrag",
                    ignore=shutil.ignore_patterns("__pycache__"))
    plant(src, module, line)
    result = lint(src, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout
    assert module.replace("/", ".").removesuffix(".py") in result.stdout
