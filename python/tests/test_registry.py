"""kvlab.methods(), presets() and canonical() show what `kvlab list --json` shows."""

import json

import pytest

import kvlab
from conftest import run_cli


@pytest.fixture(scope="module")
def listing(kvlab_bin):
    return json.loads(run_cli(kvlab_bin, "list", "--json").stdout)


def test_methods_equal_kvlab_list_json(listing):
    assert kvlab.methods() == listing["methods"]
    names = [m["name"] for m in kvlab.methods()]
    assert {"fp16", "kivi", "gear", "h2o", "qjl", "kvquant"} <= set(names)


def test_presets_equal_kvlab_list_json(listing):
    assert kvlab.presets() == listing["presets"]


def test_canonical(listing):
    for p in listing["presets"]:
        assert kvlab.canonical(p["name"]) == p["canonical"]
    assert kvlab.canonical("gear-2bit:rank=8") == kvlab.canonical(
        "gear:bits=2,group=64,sparsity=0.02,rank=8,rank_decode=2,loop=3,buffer=64")
    with pytest.raises(ValueError, match=r"unknown compressor 'kivvi' \(did you mean 'kivi'\?\)"):
        kvlab.canonical("kivvi")


def test_version():
    assert kvlab.__version__ and kvlab.git_revision
