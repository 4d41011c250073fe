"""kvlab.run() against `kvlab run --csv` on the bundled dump: the same columns
in the same order and the same numbers to the last digit; thread invariance;
errors as ValueError / OSError with the CLI's message."""

import math
import shutil

import pandas as pd
import pytest

import kvlab
from conftest import BUNDLED_DUMP, read_csv_text, run_cli

# A quantizer, GEAR (low rank + outliers), droppers scoring by attention,
# QJL (keys not reconstructible: empty K columns), KVQuant (calibrated, RoPE).
SPECS = ["kivi-2bit", "gear-2bit", "h2o-20pct", "snapkv:capacity=128", "qjl-256", "kvquant-nuq3-1pct"]
EVAL_EVERY = 16
DUMP = str(BUNDLED_DUMP)


def cell_equals(cli_text, value, kind):
    """A CSV cell (text) equals a DataFrame value exactly."""
    missing = value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
    if cli_text == "":
        return missing or (kind == "string" and value == "")
    if missing:
        return False
    if kind == "float":
        return float(cli_text) == float(value)  # float() is correctly rounded: equal to the last digit
    if kind == "int":
        return int(cli_text) == int(value)
    return cli_text == value


def assert_table_equals_csv(frame, path, types):
    header, rows = read_csv_text(path)
    assert list(frame.columns) == header
    assert len(frame) == len(rows)
    for i, row in enumerate(rows):
        for name, text in zip(header, row):
            value = frame[name].iloc[i]
            assert cell_equals(text, value, types[name]), f"{path.name} row {i} {name}: CLI {text!r}, run() {value!r}"


@pytest.fixture(scope="module")
def cli_results(kvlab_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "results"
    run_cli(kvlab_bin, "run", "-d", DUMP, *sum((["-c", s] for s in SPECS), []), "--eval-every", EVAL_EVERY,
            "-j", 2, "--csv", out)
    return out


@pytest.fixture(scope="module")
def py_results():
    return kvlab.run(DUMP, SPECS, eval_every=EVAL_EVERY, threads=2, tables=["summary", "layers", "steps", "timing"])


@pytest.fixture(scope="module")
def schema(kvlab_bin):
    """Declared column types per table, from `kvlab schema`."""
    import json

    return json.loads(run_cli(kvlab_bin, "schema").stdout)["tables"]


def declared_types(schema, table, columns):
    t = schema[f"{table}.csv"]
    fixed = {c["name"]: c["type"] for c in t["columns"]}
    kinds = {}
    for name in columns:
        if name in fixed:
            kinds[name] = fixed[name]
        else:
            group = next(g for g in t["dynamic"] if name.startswith(g["prefix"]))
            kinds[name] = group["type"]
    return kinds


@pytest.mark.parametrize("table", ["summary", "layers", "steps"])
def test_run_equals_cli_csv_to_the_last_digit(cli_results, py_results, schema, table):
    frame = py_results[table]
    assert len(frame) > 0
    assert_table_equals_csv(frame, cli_results / f"{table}.csv", declared_types(schema, table, frame.columns))


@pytest.mark.parametrize("table", ["summary", "layers", "steps", "timing"])
def test_column_dtypes_follow_the_declared_schema(py_results, schema, table):
    frame = py_results[table]
    dtype_of = {"float": ("float64",), "int": ("int64", "Int64"), "string": ("object",)}
    for name, kind in declared_types(schema, table, frame.columns).items():
        assert str(frame[name].dtype) in dtype_of[kind], f"{table}.{name}: {kind} as {frame[name].dtype}"


def test_empty_cells(py_results):
    summary = py_results["summary"]
    # QJL stores no reconstructible keys: its K errors are empty (NaN), as in the CSV.
    qjl = summary[summary["method"] == "qjl"].iloc[0]
    assert math.isnan(qjl["k_rel_err_global"])
    # A parameter that does not apply to a method is empty (None), not "".
    kivi = summary[summary["method"] == "kivi"].iloc[0]
    assert kivi["param.bits"] == "2" and kivi["param.capacity"] is None


def test_timing_has_the_cli_columns(cli_results, py_results):
    header, rows = read_csv_text(cli_results / "timing.csv")
    frame = py_results["timing"]
    assert list(frame.columns) == header
    assert list(frame["job_id"]) == [r[0] for r in rows]
    assert (frame["threads"] == 2).all()


def test_default_returns_the_summary_frame():
    frame = kvlab.run(DUMP, "kivi-2bit", layers=[1], eval_every=0)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["spec"]) == [kvlab.canonical("kivi-2bit")]
    assert frame["layers"].iloc[0] == 1


def test_threads_do_not_change_any_number():
    tables = ["summary", "layers", "steps"]
    one = kvlab.run(DUMP, ["gear-2bit", "h2o-20pct", "qjl-256"], eval_every=32, threads=1, tables=tables)
    two = kvlab.run(DUMP, ["gear-2bit", "h2o-20pct", "qjl-256"], eval_every=32, threads=2, tables=tables)
    for t in tables:
        pd.testing.assert_frame_equal(one[t], two[t], check_exact=True)


def test_layers_and_seed_select_as_the_cli(kvlab_bin, schema, tmp_path):
    run_cli(kvlab_bin, "run", "-d", DUMP, "-c", "gear-2bit", "--layers", "3,1", "--seed", 7, "--eval-every", 0,
            "--max-steps", 100, "--csv", tmp_path / "r")
    frame = kvlab.run(DUMP, ["gear-2bit"], layers=[3, 1, 3], seed=7, eval_every=0, max_steps=100)
    assert_table_equals_csv(frame, tmp_path / "r" / "summary.csv", declared_types(schema, "summary", frame.columns))
    assert frame["decode_steps"].iloc[0] == 100


def cli_error(kvlab_bin, *args):
    p = run_cli(kvlab_bin, *args, check=False)
    assert p.returncode != 0
    line = p.stderr.strip()
    assert line.startswith("kvlab: error: ")
    return line[len("kvlab: error: "):]


@pytest.mark.parametrize("spec,needle", [
    ("kivvi", "unknown compressor 'kivvi' (did you mean 'kivi'?)"),
    ("kivi:bitz=2", "unknown parameter 'bitz' for kivi (did you mean 'bits'?)"),
    ("kivi:bits=12", "parameter 'bits' = 12 is out of range [1, 8]"),
    ("kivi:residual=100", "residual (100) must be a multiple of group (32)"),
])
def test_bad_specs_raise_value_error_with_the_cli_message(kvlab_bin, spec, needle):
    message = cli_error(kvlab_bin, "run", "-d", DUMP, "-c", spec)
    assert needle in message
    with pytest.raises(ValueError) as e:
        kvlab.run(DUMP, [spec])
    assert str(e.value) == message


def test_bad_layer_is_a_value_error(kvlab_bin):
    message = cli_error(kvlab_bin, "run", "-d", DUMP, "-c", "fp16", "--layers", "9")
    with pytest.raises(ValueError) as e:
        kvlab.run(DUMP, "fp16", layers=[9])
    assert str(e.value) == message
    with pytest.raises(ValueError, match="unknown table 'layer'"):
        kvlab.run(DUMP, "fp16", tables=["layer"])
    with pytest.raises(ValueError, match="eval_every must be >= 0"):
        kvlab.run(DUMP, "fp16", eval_every=-1)


def test_file_problems_are_os_errors(kvlab_bin, tmp_path):
    missing = tmp_path / "no_such.h5"
    with pytest.raises(OSError) as e:
        kvlab.run(missing, "fp16")
    assert str(e.value) == cli_error(kvlab_bin, "run", "-d", missing, "-c", "fp16")
    assert "no such file" in str(e.value)

    not_hdf5 = tmp_path / "text.h5"
    not_hdf5.write_text("hello\n")
    with pytest.raises(OSError, match="not an HDF5 file"):
        kvlab.run(not_hdf5, "fp16")

    # Truncated: the header opens, a layer read fails mid-run (inside the job runner).
    truncated = tmp_path / "truncated.h5"
    shutil.copy(BUNDLED_DUMP, truncated)
    size = truncated.stat().st_size
    with open(truncated, "r+b") as f:
        f.truncate(size * 3 // 4)
    with pytest.raises(OSError) as e:
        kvlab.run(truncated, ["fp16", "kivi-2bit"])
    assert str(truncated) in str(e.value)
