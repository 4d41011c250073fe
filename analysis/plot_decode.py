#!/usr/bin/python3
"""Plot `kvlab decode --csv` files: how compression error compounds over decoding.

    /usr/bin/python3 analysis/plot_decode.py CSV_OR_DIR... [--out PREFIX] [--window N]

Writes PREFIX.png and PREFIX.pdf (default prefix: error-compounding).  Kept for
experiments/error-compounding.sh and docs/model-in-the-loop.md; it is the
decode part of plot_results.py (kvlab_analysis.cli), which also accepts these
inputs and adds report.md / report.html.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kvlab_analysis.cli import decode_outputs  # noqa: E402
from kvlab_analysis.load import ResultsError  # noqa: E402
from kvlab_analysis.plot_decode import DEFAULT_WINDOW  # noqa: E402
from kvlab_analysis.stats import INTERVALS  # noqa: E402
from kvlab_analysis.summary import wrap  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="plot_decode.py", description=__doc__.splitlines()[0])
    parser.add_argument("inputs", type=Path, nargs="+",
                        help="kvlab decode CSVs, or folders holding them")
    parser.add_argument("--out", default="error-compounding",
                        help="output prefix: PREFIX.png and PREFIX.pdf (default %(default)s)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                        help="running-mean window for KL and hidden error (default %(default)s)")
    parser.add_argument("--interval", choices=INTERVALS, default="auto")
    parser.add_argument("--kvlab", metavar="PATH", help="kvlab binary for preset-name labels")
    args = parser.parse_args(argv)
    prefix = Path(args.out)
    try:
        files, summary = decode_outputs(args.inputs, args, prefix.parent, stem=prefix.name,
                                        with_report=False)
    except ResultsError as exc:
        print(f"plot_decode: error: {exc}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(str(p) for p in files))
    print(wrap(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
