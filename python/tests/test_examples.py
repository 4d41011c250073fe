"""Every script in examples/python/ and every Python block of docs/python.md
runs to completion; ones that need torch are skipped, with the reason, where
torch is not installed."""

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

EXAMPLES = sorted((ROOT / "examples" / "python").glob("*.py"))
DOC = ROOT / "docs" / "python.md"


def python_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # the kvlab package under test
    return env


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script):
    p = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=python_env(), capture_output=True, text=True,
                       timeout=600)
    if p.returncode == 77:
        pytest.skip(p.stdout.strip() or "skipped by the script")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip()


def doc_blocks():
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_docs_have_examples():
    assert len(doc_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(doc_blocks())))
def test_doc_block_runs(index):
    code = doc_blocks()[index]
    if re.search(r"^import torch", code, flags=re.M):
        pytest.importorskip("torch", reason="torch is not installed: the PyTorch example of docs/python.md is skipped")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=python_env(), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
