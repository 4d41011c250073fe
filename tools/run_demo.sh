#!/usr/bin/env bash
# The default experiment: sets up (packages + build), replays the bundled real
# dumps through every method at ~2-bit budgets, writes the CSV files to
# results/methods-2bit/ and the plots to results/methods-2bit/figures/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
./build/kvlab sweep experiments/methods-2bit.yaml --overwrite "$@"
/usr/bin/python3 analysis/plot_results.py results/methods-2bit
echo "demo: results in results/methods-2bit/ (summary.csv, layers.csv, steps.csv, figures/)"
