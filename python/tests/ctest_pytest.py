#!/usr/bin/env python3
"""Runs one pytest file for ctest: skips (exit 77, printing why) when pytest,
numpy or pandas is missing, or the kvlab module cannot be imported because it
was not built; fails when pytest collects no test."""

import importlib
import sys


def main(path: str) -> int:
    for name in ("pytest", "numpy", "pandas"):
        try:
            importlib.import_module(name)
        except ImportError as e:
            print(f"SKIP: {name} is not installed for {sys.executable} ({e}); tools/setup.sh installs it")
            return 77
    import pytest

    code = pytest.main(["-q", "-p", "no:cacheprovider", "-rs", path])
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print(f"{path}: no test collected")
        return 1
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
