#!/usr/bin/python3
"""Every figure, table and report of a kvlab results folder (or of kvlab decode CSVs).

    /usr/bin/python3 analysis/plot_results.py RESULTS_DIR [--out DIR] [--budgets 2.5,3.5,...]
        [--heatmap SPEC ...] [--no-heatmaps] [--interval auto|ci95|range] [--window N]
        [--kvlab PATH]
    /usr/bin/python3 analysis/plot_results.py DECODE_CSV_OR_DIR... [--out DIR]

See analysis/README.md; the code is the kvlab_analysis package next to this file.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kvlab_analysis.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
