"""`datadrop runs` / `datadrop plot` on a deployed stack, and `datadrop run --plot` locally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datadrop import cli
from datadrop.state import RunStatus, VersionStatus

from tests.e2e.test_cli import STACK, DeployedStack

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "penguins"
VERSION = "0123456789ab"

pytestmark = pytest.mark.e2e


def _three_runs(stack: DeployedStack) -> None:
    """A decided version with three runs that vary eta and max_depth; run 3 failed."""
    state = stack.services.state
    assert state.create_version("penguins", VERSION, {"threshold": 0.9, "metric": "accuracy"})
    assert state.transition_version("penguins", VERSION, VersionStatus.TRAINING)
    results = {1: ("0.1", "3", 0.91, None), 2: ("0.3", "5", 0.95, None), 3: ("0.5", "7", None, "training Failed: OOM")}
    for index, (eta, depth, accuracy, failure) in results.items():
        hyperparameters = {"eta": eta, "max_depth": depth, "num_round": "50"}
        assert state.plan_run(
            "penguins",
            VERSION,
            index,
            1,
            {"training_job": f"j{index}", "run_name": f"r{index}", "hyperparameters": hyperparameters},
        )
        key = state.run_item("penguins", VERSION, index)
        status = RunStatus.FAILED if failure else RunStatus.EVALUATED
        metrics = {"accuracy": accuracy, "macro_f1": accuracy} if accuracy else {}
        state.set_attributes(key, status=status.value, metrics=metrics, failure_reason=failure)
    assert state.transition_version("penguins", VERSION, VersionStatus.APPROVED, best_run=2, best_value=0.95)


def test_runs_shows_one_row_per_run_best_first_with_only_the_varied_hyperparameters(
    deployed_stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    _three_runs(deployed_stack)
    assert cli.main(["runs", "penguins", "--stack", STACK, "--region", "us-east-1"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == f"penguins version {VERSION}: APPROVED, 3 run(s), ranked by held-out accuracy (threshold 0.9000)"
    assert table[1].split() == [
        "run", "algorithm", "status", "best", "eta", "max_depth", "test", "accuracy", "test", "macro_f1", "failure",
    ]  # fmt: skip
    assert table[2].split()[:7] == ["2", "xgboost", "EVALUATED", "*", "0.3", "5", "0.9500"]
    assert table[3].split()[:6] == ["1", "xgboost", "EVALUATED", "0.1", "3", "0.9100"]
    assert table[4].split()[:5] == ["3", "xgboost", "FAILED", "0.5", "7"] and table[4].endswith("training Failed: OOM")
    assert "num_round" not in table[1]  # the same in every run: it explains nothing

    assert cli.main(["runs", "penguins", "--stack", STACK, "--region", "us-east-1", "--json"]) == 0
    every_version = json.loads(capsys.readouterr().out)
    assert every_version["dataset"] == "penguins" and len(every_version["versions"]) == 1
    assert cli.main(["runs", "penguins", "--stack", STACK, "--region", "us-east-1", "--json", "--version", VERSION]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == every_version["versions"][0]
    assert document["best_run"] == 2 and document["varied"] == ["eta", "max_depth"] and len(document["runs"]) == 3

    assert cli.main(["runs", "penguins", "--stack", STACK, "--region", "us-east-1", "--csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("run,algorithm,status,best,eta,max_depth") and len(rows) == 4


def test_plot_writes_a_png_and_unknown_versions_are_named(
    deployed_stack: DeployedStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _three_runs(deployed_stack)
    png = tmp_path / "runs.png"
    assert cli.main(["plot", "penguins", "--stack", STACK, "--region", "us-east-1", "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "against eta, max_depth (3 runs)" in capsys.readouterr().out
    assert cli.main(["runs", "penguins", "--stack", STACK, "--region", "us-east-1", "--version", "ffffffffffff"]) == 2
    assert f"it has: {VERSION}" in capsys.readouterr().err
    assert cli.main(["runs", "nothing", "--stack", STACK, "--region", "us-east-1"]) == 2


def test_run_plot_draws_the_grid_locally(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "grid.yaml"
    config.write_text("target: sex\nthreshold: 0.5\nhyperparameters: {num_round: 20, max_depth: [1, 6], eta: [0.05, 1.0]}\n")
    png = tmp_path / "grid.png"
    arguments = ["run", str(EXAMPLE / "penguins.csv"), "--dataset", "penguins-sex", "--config", str(config)]
    assert cli.main([*arguments, "--plot", str(png), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["plot"] == str(png) and len(summary["runs"]) == 4
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
