"""`datadrop prepare PATH --dataset NAME [--target COLUMN] [--config FILE] [--json]`: the prepare step
alone, on a local file, with no AWS at all; its report as a table or one JSON object; exit 0 / 2 / 64."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest
from datadrop import cli, names
from datadrop.config import parse_config
from datadrop.dataprep import prepare
from datadrop.quality import QualityReport

PENGUINS = Path(__file__).resolve().parents[2] / "examples" / "penguins"
CSV = PENGUINS / "penguins.csv"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["prepare", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_prints_the_report_as_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(CSV), "--dataset", "penguins", "--config", str(PENGUINS / "sex.yaml"))
    assert code == cli.EXIT_OK, err
    report = prepare(CSV.read_bytes(), parse_config((PENGUINS / "sex.yaml").read_bytes(), "sex.yaml")).report
    lines = out.splitlines()
    assert lines[0].startswith("penguins ") and report.detected.describe() in lines[0]
    assert (
        f"rows: {report.rows.read} read, {report.rows.usable} usable (dropped: {report.rows.missing_target} missing target)"
        in out
    )
    assert "target 'sex' (binary): 'female' " in out
    for column in report.columns:
        row = next(line for line in lines if line.startswith(column.name + " "))
        assert row.split()[1] == column.role, row
    assert "year: listed in drop_columns" in out
    assert "normalisations:" in out and "rows with a missing target dropped (11)" in out


def test_json_is_one_object_with_the_version_the_service_would_give(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(CSV), "--dataset", "penguins", "--target", "species", "--json")
    assert code == cli.EXIT_OK
    document = json.loads(out)  # the whole of stdout: exactly one JSON object
    config = parse_config("target: species\n", "x")
    assert document["status"] == "prepared" and document["dataset"] == "penguins"
    assert document["version"] == names.dataset_version(hashlib.sha256(CSV.read_bytes()).hexdigest(), config.fingerprint())
    report = QualityReport.model_validate(document["report"])
    assert (report.dataset, report.version, report.target.name) == ("penguins", document["version"], "species")


def test_target_overrides_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, str(CSV), "--dataset", "penguins", "--config", str(PENGUINS / "species.yaml"), "--target", "sex", "--json"
    )
    assert code == cli.EXIT_OK
    assert json.loads(out)["report"]["target"]["name"] == "sex"


def test_reads_a_gzip_file_whatever_its_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "penguins.csv"
    packed = gzip.compress(CSV.read_bytes())
    path.write_bytes(packed)
    code, out, _ = run(capsys, str(path), "--dataset", "penguins", "--target", "species")
    assert code == cli.EXIT_OK
    assert "gzip-compressed" in out.splitlines()[0]
    assert path.read_bytes() == packed  # the file is only read


def test_a_rejected_file_exits_2_with_the_reason_on_stderr(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    code, out, err = run(capsys, str(empty), "--dataset", "d", "--target", "label")
    assert code == cli.EXIT_INPUT_REJECTED and out == ""
    assert "would be rejected: the uploaded file is empty (0 bytes)" in err

    code, out, err = run(capsys, str(CSV), "--dataset", "d", "--target", "Species", "--json")
    assert code == cli.EXIT_INPUT_REJECTED
    document = json.loads(out)
    assert document["status"] == "rejected" and document["stage"] == "data"
    assert "did you mean 'species'" in document["reason"] and document["reason"] in err


def test_a_regression_target_prints_its_values_instead_of_a_class_balance(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(CSV), "--dataset", "mass", "--config", str(PENGUINS / "body-mass.yaml"))
    assert code == cli.EXIT_OK, err
    assert "target 'body_mass_g' (regression): min 2700, median 4050, mean 4201.75, max 6300" in out
    assert "splits (target mean): train 242 (" in out


def test_a_metric_that_does_not_fit_the_found_problem_type_is_a_config_rejection(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "species.yaml"
    config.write_text("target: species\nmetric: rmse\nthreshold: 300\n")
    code, out, err = run(capsys, str(CSV), "--dataset", "penguins", "--config", str(config), "--json")
    assert code == cli.EXIT_INPUT_REJECTED
    document = json.loads(out)
    assert document["stage"] == "config" and "metric rmse is a regression metric" in document["reason"]
    assert "the target 'species' is a multiclass target" in err


def test_a_bad_config_is_a_rejection_naming_the_field(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("target: species\nsplit: {test: 0.9}\n")
    code, out, err = run(capsys, str(CSV), "--dataset", "penguins", "--config", str(config), "--json")
    assert code == cli.EXIT_INPUT_REJECTED
    assert json.loads(out)["stage"] == "config" and "split.test" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([str(CSV), "--dataset", "penguins"], "give --target COLUMN or --config FILE"),
        (["missing.csv", "--dataset", "penguins", "--target", "x"], "cannot read missing.csv"),
        ([str(CSV), "--dataset", "Penguins!", "--target", "species"], "dataset name 'Penguins!'"),
        ([str(CSV), "--target", "species"], "the following arguments are required: --dataset"),
    ],
)
def test_usage_errors_exit_64(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    try:
        code, _, err = run(capsys, *argv)
    except SystemExit as exited:  # argparse's own errors
        code, err = int(exited.code or 0), capsys.readouterr().err
    assert code == cli.EXIT_USAGE
    assert message in err


def test_help_says_what_it_reads_and_what_the_exit_status_means(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["prepare", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "usage: datadrop prepare [-h] --dataset DATASET [--target TARGET] [--config CONFIG] [--json] PATH" in text
    assert "no AWS" in text and "Parquet" in text and "JSON Lines" in text and "gzip" in text
    assert "exit status: 0 when the file would be prepared" in text and "2 when it would be rejected" in text and "64" in text
