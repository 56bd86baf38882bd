"""The CI workflow runs the shared CI steps and comments with CML; the steps script pulls and pushes the
run-cache, reproduces, checks the committed results and reports the metrics and plots diff (its real run:
tests/e2e/test_ci_local.py)."""

import subprocess

import yaml
from support.repo import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "pipeline.yml"


def test_the_workflow_runs_the_shared_steps_and_comments_with_cml():
    wf = yaml.safe_load(WORKFLOW.read_text())
    assert wf["permissions"]["pull-requests"] == "write"
    steps = wf["jobs"]["repro"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert any(u.startswith("iterative/setup-cml") for u in uses)
    assert any(u.startswith("actions/checkout") and s["with"]["fetch-depth"] == 0
               for u, s in zip(uses, steps))
    assert "scripts/setup.sh" in runs and "scripts/ci_steps.sh" in runs and "cml comment" in runs


def test_the_steps_script_does_each_step_in_order():
    text = "\n".join(line for line in (ROOT / "scripts" / "ci_steps.sh").read_text().splitlines()
                     if not line.lstrip().startswith(("#", "echo")))
    order = ["dvc pull --run-cache", 'dvc repro "$@"', "git status --porcelain", "dvc push --run-cache",
             "dvc metrics diff", "dvc plots diff"]
    assert [text.index(s) for s in order] == sorted(text.index(s) for s in order)
    for script in ("ci_steps.sh", "ci_local.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)], check=True)
