#!/usr/bin/env bash
# The CI workflow's steps (scripts/ci_steps.sh), run locally as CI runs them: in a fresh clone of the
# repository's committed HEAD, with an empty DVC cache and REMOTE (a local folder, made if missing) as its DVC
# remote. Run it twice: the first run computes what the remote lacks and pushes it with the run-cache; the
# second restores every stage from the run-cache and runs none.
# Usage: scripts/ci_local.sh --remote DIR [--repo DIR] [--base REV] [--report DIR] [--keep] [-- repro args]
#   --repo: the repository (default: this one); --base: the revision the metrics are compared with
#   (default: HEAD~1); --report: where the report is copied (default: ./ci-report); --keep: keep the clone.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
remote=
base=HEAD~1
report=$PWD/ci-report
keep=
while [ $# -gt 0 ]; do
  case "$1" in
    --remote) remote=$2; shift 2 ;;
    --repo) repo=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --) shift; break ;;
    *) echo "ci_local.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$remote" ] || { echo "ci_local.sh: --remote DIR is required" >&2; exit 2; }
mkdir -p "$remote"
remote=$(cd "$remote" && pwd)
repo=$(cd "$repo" && pwd)
mkdir -p "$report"
report=$(cd "$report" && pwd)
work=$(mktemp -d)
[ -n "$keep" ] || trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/repo"
cd "$work/repo"
# the remote in .dvc/config.local (not committed), as CI's remote is in .dvc/config
dvc remote add --local -f -d ci "$remote"
echo "ci_local: fresh clone $work/repo of $(git rev-parse --short HEAD), remote $remote"
status=0
bash scripts/ci_steps.sh --base "$base" --report "$report" -- "$@" || status=$?
exit $status
