#!/usr/bin/env bash
# The whole test suite: sets up (packages + build), runs every ctest test
# (Catch2 unit/contract tests, CLI tests, Python tests) and the regression
# cases on the bundled dumps.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
(cd build && ctest -j "$(nproc)" --output-on-failure)
./build/kvlab regress --quiet
