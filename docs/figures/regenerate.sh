#!/usr/bin/env bash
# Regenerates the bundled experiment figures in docs/figures/ from fresh runs:
# each sweep in experiments/ (one at a time), experiments/error-compounding.sh,
# then analysis/plot_results.py; copies the figures that answer each
# experiment's question here under stable names.
#
#   docs/figures/regenerate.sh [KVLAB_BIN]      (default build/kvlab; from anywhere)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KVLAB=${1:-$ROOT/build/kvlab}
DOCS=$ROOT/docs/figures
PLOT=(/usr/bin/python3 "$ROOT/analysis/plot_results.py")
cd "$ROOT"
[ -x "$KVLAB" ] || { echo "regenerate: kvlab binary not found at $KVLAB" >&2; exit 1; }

for sweep in methods-2bit gear-ablation error-accumulation budget-sweep error-compounding eviction-zoo; do
  echo "== $sweep"
  "$KVLAB" -q sweep "experiments/$sweep.yaml" --overwrite
done
echo "== error-compounding.sh"
bash experiments/error-compounding.sh "$KVLAB" >/dev/null
echo "== quant-zoo.sh"
bash experiments/quant-zoo.sh "$KVLAB" -q --overwrite >/dev/null

plot() {  # plot RESULTS: figures into RESULTS/figures (PNG only), summary to stdout
  "${PLOT[@]}" "$1" --no-pdf --kvlab "$KVLAB" | sed -n '/^$/,$p'
}
for results in methods-2bit gear-ablation error-accumulation budget-sweep \
               error-compounding-sweep error-compounding quant-zoo; do
  echo "== $results"
  plot "results/$results"
done

copy() { cp "results/$1/figures/$2" "$DOCS/$3"; echo "$DOCS/$3"; }
copy methods-2bit pareto.png methods-2bit-pareto.png
copy methods-2bit best_per_budget.md methods-2bit-best-per-budget.md
copy gear-ablation ablation_gear.png gear-ablation.png
copy gear-ablation pareto.png gear-ablation-pareto.png
copy error-accumulation error_vs_step.png error-accumulation.png
copy error-accumulation pareto.png error-accumulation-pareto.png
copy budget-sweep pareto.png budget-sweep-pareto.png
copy error-compounding-sweep model_in_the_loop.png error-compounding-sweep.png
copy error-compounding model_in_the_loop.png error-compounding.png
copy quant-zoo pareto.png quant-zoo-pareto.png
copy quant-zoo best_per_budget.md quant-zoo-best-per-budget.md
/usr/bin/python3 analysis/plot_eviction_zoo.py results/eviction-zoo >/dev/null
copy eviction-zoo eviction_zoo.png eviction-zoo.png
copy eviction-zoo eviction_zoo_ranks.md eviction-zoo-ranks.md
