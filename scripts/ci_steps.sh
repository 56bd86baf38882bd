#!/usr/bin/env bash
# The pipeline's CI steps, shared by the GitHub workflow (.github/workflows/pipeline.yml) and
# scripts/ci_local.sh, run in a clone whose DVC remote is configured (`dvc remote add -d ...`):
#   1. pull the run-cache and the committed outputs from the remote (none yet on a first run),
#   2. `dvc repro` (a stage whose run the run-cache holds is restored, not run),
#   3. check that dvc.lock and the results kept in git (metrics/, reports/, dvclive/) are what was committed,
#   4. push the outputs and the run-cache, so the next run (CI or a colleague) restores instead of running,
#   5. write the report: `dvc metrics diff` against the base revision (markdown) and `dvc plots diff`
#      (HTML, and each named plot's Vega-Lite spec for the workflow to render as PNG).
# Exit 1 when step 3 finds a difference (after steps 4 and 5, so the run is not lost).
# Usage: scripts/ci_steps.sh [--base REV] [--report DIR] [-- dvc repro arguments]
set -euo pipefail
base=HEAD~1
report=ci-report
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "ci_steps.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
committed="dvc.lock metrics reports dvclive"

echo "== dvc pull --run-cache"
dvc pull --run-cache --allow-missing
echo "== dvc repro $*"
dvc repro "$@"
echo "== committed results"
changed=$(git status --porcelain --untracked-files=all -- $committed)
if [ -n "$changed" ]; then
  echo "ci: dvc repro changed results that are not committed (run \`dvc repro\` and commit them):"
  echo "$changed"
  git --no-pager diff --stat -- $committed
else
  echo "dvc.lock and metrics are as committed"
fi
echo "== dvc push --run-cache"
dvc push --run-cache
echo "== report against $base"
mkdir -p "$report"
{
  echo "## Pipeline: metrics against \`$base\`"
  echo
  dvc metrics diff "$base" --md
  if [ -n "$changed" ]; then
    echo
    echo "**dvc repro changed uncommitted results:**"
    echo
    echo '```'
    echo "$changed"
    echo '```'
  fi
} > "$report/report.md"
cat "$report/report.md"
dvc plots diff "$base" -o "$report/plots" > /dev/null
for name in accuracy parse_rate position_consistency; do
  dvc plots diff "$base" --targets "$name" --show-vega > "$report/$name.vl.json"
done
echo "plots: $report/plots/index.html"
[ -z "$changed" ]
