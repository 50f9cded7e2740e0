"""Column roles boolean, datetime and ID-like integers (datadrop.roles): detection, pinning, rejection, and
one encoding in prepare's CSVs, recipe.encode_row and the serving code (checked against the reference
encoder of test_dataprep, which reads dates with the datetime module)."""

from __future__ import annotations

import csv
import datetime
import io
import random
import statistics

import numpy as np
import polars as pl
import pytest
from datadrop import roles
from datadrop.config import ConfigError, DatasetConfig, parse_config
from datadrop.dataprep import DatasetRejected, PreparedDataset, prepare
from datadrop.local.model import load_inference_module
from datadrop.quality import BooleanSummary, DatetimeSummary, render_table
from datadrop.recipe import encode_row
from datadrop.serving import INFERENCE_SOURCE

from tests.held_out import held_out_records
from tests.unit.test_dataprep import (
    assert_matches_reference,
    parse_matrix,
    ref_clean,
    ref_datetime,
    ref_datetime_part,
    ref_split,
    same_float,
    to_csv,
)

inference = load_inference_module(INFERENCE_SOURCE.parent)


def columns_of(prepared: PreparedDataset) -> dict:
    return {column.name: column for column in prepared.report.columns}


def kinds_of(prepared: PreparedDataset) -> dict[str, str]:
    return {feature["name"]: feature["kind"] for feature in prepared.recipe["features"]}


def labelled(columns: dict[str, list[str]], n: int) -> bytes:
    """A CSV of the given columns plus a two-class `label` and a numeric feature `x` that is no row number."""
    header = ["label", "x", *columns]
    rows = [[["a", "b"][i % 2], str((i * 7) % 101), *(values[i] for values in columns.values())] for i in range(n)]
    return to_csv(header, rows)


# ----------------------------------------------------------------------------------------------
# Dates: the parser, the polars expressions and the inference script's copy agree with the datetime module.

DATE_TEXTS = [
    "2024-03-01",
    "2024/03/01",
    "2024-03-01 12:30",
    "2024-03-01 12:30:59",
    "2024-03-01T12:30:00Z",
    "2024-03-01T12:30:00.123456+05:30",
    "2024-03-01T23:59:59,5-0800",
    "2024-03-01T00:00:00+01",
    "2024-02-29",
    "2000-02-29 06:00",
    "0001-01-01",
    "9999-12-31 23:59:59",
    "1969-12-31 23:59:59",
    "1900-03-01",
]
NOT_DATES = [
    "2023-02-29",  # not a leap year
    "1900-02-29",
    "2024-04-31",
    "2024-13-01",
    "2024-00-10",
    "0000-01-01",
    "2024-03-01 24:00",
    "2024-03-01 12:60",
    "2024-03-01 12:30:60",
    "2024-3-1",
    "01/03/2024",
    "2024-03-01Z",
    "2024-03-01t12:30",
    "2024-03-01 12",
    "20240301",
    "2024-03-01 12:30:00 +0000",
    "\u0662\u0660\u0662\u0664-03-01",  # Arabic-Indic digits: ASCII digits only
    "2024-03-01\n",
    "yesterday",
    "",
]


@pytest.mark.parametrize("text", DATE_TEXTS)
def test_dates_are_read_as_the_datetime_module_reads_the_wall_clock_time(text: str) -> None:
    moment = ref_datetime(text)
    assert moment is not None
    parsed = roles.parse_datetime(text)
    assert parsed is not None and inference.parse_datetime(text) == parsed[:6]
    frame = roles.datetime_frame(pl.Series([text]), [])
    for part in roles.DATETIME_PARTS:
        expected = ref_datetime_part(moment, part)
        assert roles.datetime_part(parsed, part) == expected, part
        assert inference.datetime_part(parsed[:6], part) == expected, part
        assert same_float(frame.get_column(part)[0], expected), part
    assert frame.get_column("\x00time")[0] == (len(text) > 10)


@pytest.mark.parametrize("text", NOT_DATES)
def test_what_is_not_a_date(text: str) -> None:
    assert ref_datetime(text) is None or text.endswith("\n")
    assert roles.parse_datetime(text) is None and inference.parse_datetime(text) is None
    frame = roles.datetime_frame(pl.Series([text]), [])
    assert all(frame.get_column(part)[0] is None for part in roles.DATETIME_PARTS)


def test_polars_python_and_inference_agree_on_many_dates() -> None:
    rng = random.Random(4)
    texts = []
    for _ in range(5000):
        text = f"{rng.randint(0, 2400):04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}"
        if rng.random() < 0.6:
            text += f"{rng.choice('T ')}{rng.randint(0, 25):02d}:{rng.randint(0, 61):02d}"
            if rng.random() < 0.7:
                text += f":{rng.randint(0, 61):02d}"
        texts.append(text)
    frame = roles.datetime_frame(pl.Series(texts), ["NA"])
    for index, text in enumerate(texts):
        moment, parsed = ref_datetime(text), roles.parse_datetime(text)
        assert (moment is None) == (parsed is None) == (inference.parse_datetime(text) is None), text
        for part in roles.DATETIME_PARTS:
            polars_value = frame.get_column(part)[index]
            if moment is None:
                assert polars_value is None, text
            else:
                assert parsed is not None
                expected = ref_datetime_part(moment, part)
                assert same_float(polars_value, expected) and roles.datetime_part(parsed, part) == expected, (text, part)
                assert inference.datetime_part(parsed[:6], part) == expected, (text, part)


def test_the_inference_script_has_the_same_rules() -> None:
    assert inference.DATETIME_PATTERN == roles.DATETIME_PATTERN
    assert inference.DATETIME_PARTS == roles.DATETIME_PARTS


# ----------------------------------------------------------------------------------------------
# boolean


def test_a_yes_no_column_is_boolean_and_says_how_it_was_read() -> None:
    n = 120
    answers = [["yes", "No", "Y", "n", "TRUE", "false"][i % 6] if i % 10 else "" for i in range(n)]
    data = labelled({"subscribed": answers}, n)
    prepared = prepare(data, DatasetConfig(target="label"))
    feature = next(feature for feature in prepared.recipe["features"] if feature["name"] == "subscribed")
    assert feature == {
        "name": "subscribed",
        "kind": "boolean",
        "true": ["1", "t", "true", "y", "yes"],
        "false": ["0", "f", "false", "n", "no"],
    }
    column = columns_of(prepared)["subscribed"]
    assert (column.role, column.type, column.missing) == ("boolean", "text", 12)
    summary = column.summary
    assert isinstance(summary, BooleanSummary)
    assert summary.true + summary.false == prepared.report.splits["train"].rows - sum(
        1 for row, place in zip(*_train_rows(data)) if place == "train" and row["subscribed"] == ""
    )
    assert set(summary.true_values) == {"yes", "Y", "TRUE"} and set(summary.false_values) == {"No", "n", "false"}
    assert summary.true_share == summary.true / (summary.true + summary.false)
    steps = {(note.step, note.column) for note in prepared.report.normalisations}
    assert {("booleans_read", "subscribed"), ("missing_level", "subscribed")} <= steps
    assert "true" in render_table(prepared.report)
    assert_matches_reference(data, DatasetConfig(target="label"), prepared)
    assert prepared.report.summary().features == 2


def _train_rows(data: bytes) -> tuple[list[dict[str, str]], list[str]]:
    _, rows = ref_clean(data, "label", DatasetConfig(target="label").missing_values)
    return rows, ref_split(rows, "label", 0.15, 0.15, 42)


def test_a_0_1_column_stays_numeric_and_encodes_as_before() -> None:
    n = 80
    flags = [str(i % 2) if i % 9 else "NA" for i in range(n)]
    prepared = prepare(labelled({"flag": flags}, n), DatasetConfig(target="label"))
    flag = next(feature for feature in prepared.recipe["features"] if feature["name"] == "flag")
    assert flag["kind"] == "numeric" and flag["fill"] in (0.0, 0.5, 1.0)


def test_0_1_with_a_word_is_boolean_and_one_truth_value_is_a_category() -> None:
    n = 80
    prepared = prepare(
        labelled({"mixed": [["1", "0", "no"][i % 3] for i in range(n)], "only": ["yes" if i % 3 else "" for i in range(n)]}, n),
        DatasetConfig(target="label"),
    )
    assert kinds_of(prepared)["mixed"] == "boolean"
    assert kinds_of(prepared)["only"] == "categorical"  # one value and missing: kept as before (0 / -1)


def test_a_pinned_boolean_is_used_even_with_one_truth_value() -> None:
    n = 80
    data = labelled({"only": ["Yes" if i % 3 else "" for i in range(n)]}, n)
    config = DatasetConfig(target="label", columns={"only": {"role": "boolean"}})
    prepared = prepare(data, config)
    assert kinds_of(prepared)["only"] == "boolean"
    assert_matches_reference(data, config, prepared)


def test_a_pinned_boolean_with_other_values_is_rejected_naming_column_and_value() -> None:
    n = 80
    data = labelled({"answer": [["yes", "no", "maybe"][i % 3] for i in range(n)]}, n)
    with pytest.raises(DatasetRejected) as rejected:
        prepare(data, DatasetConfig(target="label", columns={"answer": {"role": "boolean"}}))
    reason = rejected.value.reason
    assert "'answer' is pinned as boolean" in reason and "'maybe'" in reason and "missing_values" in reason
    # unpinned, the same column is a three-level category
    assert kinds_of(prepare(data, DatasetConfig(target="label")))["answer"] == "categorical"


def test_a_pinned_categorical_yes_no_column_stays_categorical() -> None:
    n = 60
    data = labelled({"answer": [["yes", "no"][i % 2] for i in range(n)]}, n)
    prepared = prepare(data, DatasetConfig(target="label", columns={"answer": {"role": "categorical"}}))
    assert kinds_of(prepared)["answer"] == "categorical"


# ----------------------------------------------------------------------------------------------
# datetime


def signup_dates(n: int, seed: int = 2, times: bool = True) -> list[str]:
    rng = random.Random(seed)
    start = datetime.datetime(2019, 1, 1)
    values = []
    for i in range(n):
        moment = start + datetime.timedelta(minutes=rng.randint(0, 5 * 365 * 24 * 60))
        if not times or i % 3 == 0:
            values.append(moment.strftime(rng.choice(["%Y-%m-%d", "%Y/%m/%d"])))
        else:
            values.append(moment.strftime(rng.choice(["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M+02:00"])))
    return values


def test_a_date_column_is_expanded_into_parts_with_training_median_fills() -> None:
    n = 150
    dates = signup_dates(n)
    dates[7], dates[20], dates[33] = "NA", "not a date", "2023-02-30"  # missing and unreadable: the fills
    data = labelled({"signup_date": dates}, n)
    config = DatasetConfig(target="label")
    prepared = prepare(data, config)
    parts = [feature for feature in prepared.recipe["features"] if feature.get("column") == "signup_date"]
    assert [feature["part"] for feature in parts] == list(roles.DATETIME_PARTS)
    assert [feature["name"] for feature in parts][:2] == ["signup_date.year", "signup_date.month"]
    column = columns_of(prepared)["signup_date"]
    summary = column.summary
    assert (column.role, column.type) == ("datetime", "text") and isinstance(summary, DatetimeSummary)
    assert summary.with_time and summary.parts == list(roles.DATETIME_PARTS)
    assert summary.fills == {feature["part"]: feature["fill"] for feature in parts}
    assert "2019-01-01" <= summary.min < summary.max <= "2024-01-01"
    rows, where = _train_rows(data)
    train_moments = [ref_datetime(row["signup_date"]) for row, place in zip(rows, where) if place == "train"]
    present = [moment for moment in train_moments if moment is not None]
    assert summary.not_dates == len(train_moments) - len(present) - sum(
        row["signup_date"] == "NA" for row, place in zip(rows, where) if place == "train"
    )
    assert summary.fills["year"] == statistics.median(moment.year for moment in present)
    steps = {(note.step, note.column) for note in prepared.report.normalisations}
    assert {("datetime_expanded", "signup_date"), ("imputed", "signup_date")} <= steps
    assert "parts year, month" in render_table(prepared.report)
    assert prepared.report.summary().features == 2
    assert_matches_reference(data, config, prepared)


def test_dates_without_times_have_no_hour_and_datetime_drop_drops_them() -> None:
    n = 80
    data = labelled({"day": signup_dates(n, times=False)}, n)
    prepared = prepare(data, DatasetConfig(target="label"))
    assert [f["part"] for f in prepared.recipe["features"] if f.get("column") == "day"] == list(roles.DATE_PARTS)
    dropped = prepare(data, parse_config("target: label\ndatetime: drop\n", "config.yaml"))
    column = columns_of(dropped)["day"]
    assert (column.role, column.reason) == ("dropped", "datetime") and "datetime: drop" in (column.detail or "")
    assert dropped.recipe["dropped"] == [{"name": "day", "reason": "datetime"}]
    # a pinned datetime is expanded whatever the dataset-level setting
    pinned = prepare(data, DatasetConfig(target="label", datetime="drop", columns={"day": {"role": "datetime"}}))
    assert columns_of(pinned)["day"].role == "datetime"


def test_a_column_of_one_date_is_constant() -> None:
    n = 60
    prepared = prepare(
        labelled({"exported": ["2024-03-01" if i % 5 else "2024/03/01" for i in range(n)]}, n), DatasetConfig(target="label")
    )
    column = columns_of(prepared)["exported"]
    assert (column.role, column.reason, column.detail) == ("dropped", "constant", "every date in the training rows is 2024-03-01")


def test_a_few_non_dates_are_tolerated_but_many_are_not() -> None:
    n = 100
    few = signup_dates(n)
    few[10] = "soon"  # 1% of the values
    assert columns_of(prepare(labelled({"d": few}, n), DatasetConfig(target="label")))["d"].role == "datetime"
    many = [value if i % 4 else "soon" for i, value in enumerate(signup_dates(n))]
    assert columns_of(prepare(labelled({"d": many}, n), DatasetConfig(target="label")))["d"].role == "categorical"
    with pytest.raises(DatasetRejected) as rejected:
        prepare(labelled({"d": many}, n), DatasetConfig(target="label", columns={"d": {"role": "datetime"}}))
    reason = rejected.value.reason
    assert "'d' is pinned as datetime" in reason and "'soon'" in reason and "YYYY-MM-DD" in reason


def test_a_pinned_datetime_column_of_numbers_is_rejected() -> None:
    n = 60
    with pytest.raises(DatasetRejected, match="only 0 of its present training values are dates"):
        prepare(
            labelled({"d": [str(i * 3) for i in range(n)]}, n), DatasetConfig(target="label", columns={"d": {"role": "datetime"}})
        )


# ----------------------------------------------------------------------------------------------
# ID-like integer columns


def test_row_numbers_are_dropped_and_the_report_says_why() -> None:
    n = 1000
    data = labelled({"row": [str(i + 1) for i in range(n)], "count": [str(i) for i in range(n)][::-1]}, n)
    prepared = prepare(data, DatasetConfig(target="label"))
    columns = columns_of(prepared)
    for name, first, last in (("row", 1, 1000), ("count", 999, 0)):
        assert (columns[name].role, columns[name].reason) == ("dropped", "id_like")
        assert f"all 1,000 values distinct and consecutive in file order ({first:,} to {last:,}" in (columns[name].detail or "")
    notes = [note for note in prepared.report.normalisations if note.step == "column_dropped"]
    assert {note.column for note in notes} == {"row", "count"}
    kept = prepare(data, DatasetConfig(target="label", columns={"row": {"role": "numeric"}}))
    assert kinds_of(kept)["row"] == "numeric"


def test_row_numbers_are_checked_across_blocks_of_rows_and_on_the_file_as_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # prepare checks a coded column a block of rows at a time, carrying the last number across blocks
    monkeypatch.setattr(roles, "ROW_NUMBER_BLOCK", 7)
    blocks = [range(1, 8), range(9, 16), range(15, 22), range(22, 29), range(29, 36)]  # steps of 1 inside each block, not between
    jumping = [str(i) for block in blocks for i in block]
    assert int(jumping[-1]) - int(jumping[0]) == len(jumping) - 1  # the ends alone would pass
    rows = [str(i + 1) for i in range(35)]
    rows[5] = "NA"  # a missing value: not row numbers any more
    data = labelled({"row": [str(i + 1) for i in range(35)], "amount": jumping, "gappy": rows}, 35)
    prepared = prepare(data, DatasetConfig(target="label"))
    columns = columns_of(prepared)
    assert (columns["row"].role, columns["row"].reason) == ("dropped", "id_like")
    assert columns["amount"].role == "numeric" and columns["gappy"].role == "numeric"
    # in file order, before cleaning: rows whose target is missing still count
    targets = to_csv(
        ["label", "x", "row"], [["" if i == 3 else ["a", "b"][i % 2], str((i * 7) % 101), str(i + 1)] for i in range(40)]
    )
    assert columns_of(prepare(targets, DatasetConfig(target="label")))["row"].reason == "id_like"


@pytest.mark.parametrize(
    "values",
    [
        [str(2000 + i // 4) for i in range(120)],  # a year, sorted, repeating
        [str((i * 37) % 1009) for i in range(120)],  # distinct integers, not in order
        [str(i + 1) for i in range(60)] + [str(i + 62) for i in range(60)],  # one number missing: not row numbers
        [str(i * 2) for i in range(120)],  # step 2
        [f"{i + 1}.5" for i in range(120)],  # not integers
    ],
)
def test_numbers_that_are_not_identifiers_are_kept(values: list[str]) -> None:
    prepared = prepare(labelled({"amount": values}, len(values)), DatasetConfig(target="label"))
    assert kinds_of(prepared)["amount"] == "numeric"


@pytest.mark.parametrize(
    ("name", "is_id"),
    [
        ("id", True),
        ("ID", True),
        ("user_id", True),
        ("user-id", True),
        ("CustomerID", True),
        ("customerId", True),
        ("order uuid", True),
        ("row_number", True),
        ("index", True),
        ("paid", False),
        ("idea", False),
        ("price_index", False),
        ("valid", False),
        ("identity", False),
    ],
)
def test_identifier_names(name: str, is_id: bool) -> None:
    assert roles.looks_like_id_name(name) == is_id


def test_an_id_named_column_of_distinct_integers_is_dropped_and_repeats_are_kept() -> None:
    n = 120
    shuffled = [str(value) for value in random.Random(3).sample(range(10_000, 99_999), n)]
    data = labelled({"customer_id": shuffled, "store_id": [str(i % 7) for i in range(n)]}, n)
    prepared = prepare(data, DatasetConfig(target="label"))
    columns = columns_of(prepared)
    assert (columns["customer_id"].role, columns["customer_id"].reason) == ("dropped", "id_like")
    assert "named like one" in (columns["customer_id"].detail or "")
    assert columns["store_id"].role == "numeric"  # repeats: a grouping, not an identifier


# ----------------------------------------------------------------------------------------------
# A corpus-style file: id, a date, a yes/no column; prepare, encode_row and the endpoint's code agree.


def customers(n: int = 300, seed: int = 8) -> bytes:
    rng = random.Random(seed)
    dates = signup_dates(n, seed)
    header = ["customer_id", "signup_date", "newsletter", "plan", "visits", "churned"]
    rows = []
    for i in range(n):
        newsletter = rng.choice(["yes", "no", "Yes", "NO", "y"]) if i % 17 else rng.choice(["", "NA"])
        signup = dates[i] if i % 23 else rng.choice(["", "2021-02-29", "last week"])
        visits = f"{rng.randint(0, 3000):,}"  # thousands separators
        churned = "yes" if (newsletter.lower().startswith("n") or rng.random() < 0.2) else "no"
        rows.append([str(i + 1), signup, newsletter, rng.choice(["basic", "Pro", "pro"]), visits, churned])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    return buffer.getvalue().encode()


def test_a_customer_file_prepares_with_roles_and_one_encoding_everywhere() -> None:
    data = customers()
    config = DatasetConfig(target="churned", split={"validation": 0.2, "test": 0.2, "seed": 3})
    prepared = prepare(data, config)
    roles_found = {column.name: column.role for column in prepared.report.columns}
    assert roles_found == {
        "customer_id": "dropped",
        "signup_date": "datetime",
        "newsletter": "boolean",
        "plan": "categorical",
        "visits": "numeric",
        "churned": "target",
    }
    assert columns_of(prepared)["customer_id"].detail.startswith(
        "looks like an identifier: all 300 values distinct and consecutive in file order (1 to 300"
    )
    assert_matches_reference(data, config, prepared)

    # the serving code encodes the raw train and validation rows as the CSVs do; and the test rows as encode_row does
    header, rows = ref_clean(data, "churned", config.missing_values)
    where = ref_split(rows, "churned", 0.2, 0.2, 3)
    compiled = inference.compile_recipe(prepared.recipe)
    for split, produced in (("train", prepared.train_csv), ("validation", prepared.validation_csv)):
        served = [compiled.encode(row) for row, place in zip(rows, where) if place == split]
        assert [row[1:] for row in parse_matrix(produced)] == served
    features_header = [name for name in header if name != "churned"]
    for record in held_out_records(prepared):
        row = dict(zip(features_header, record))
        assert compiled.encode(row) == encode_row(prepared.recipe, row)
    # values prepare never saw: unparseable and odd spellings take the fills / -1
    odd = {"customer_id": "9", "signup_date": "2024-02-30", "newsletter": "  TRUE ", "plan": "gold", "visits": "x"}
    assert compiled.encode(dict(odd, newsletter="unsure")) == encode_row(prepared.recipe, dict(odd, newsletter="unsure"))
    assert (
        compiled.encode(dict(odd, newsletter="unsure"))[[f["name"] for f in prepared.recipe["features"]].index("newsletter")]
        == -1.0
    )
    encoded = compiled.encode(odd)
    assert encoded == encode_row(prepared.recipe, odd)
    names = [feature["name"] for feature in prepared.recipe["features"]]
    assert encoded[names.index("newsletter")] == 1.0
    assert encoded[names.index("signup_date.year")] == next(
        feature["fill"] for feature in prepared.recipe["features"] if feature["name"] == "signup_date.year"
    )


def test_the_serving_code_reads_a_header_of_raw_column_names() -> None:
    prepared = prepare(customers(), DatasetConfig(target="churned"))
    module = load_inference_module(INFERENCE_SOURCE.parent)
    module.use_recipe(prepared.recipe)
    body = 'customer_id,signup_date,newsletter,plan,visits\n7,2022-05-04 10:00:00,no,basic,"1,200"\n'
    matrix = module.input_fn(body, "text/csv")
    row = {"customer_id": "7", "signup_date": "2022-05-04 10:00:00", "newsletter": "no", "plan": "basic", "visits": "1,200"}
    assert matrix.tolist() == np.asarray([encode_row(prepared.recipe, row)], dtype=np.float32).tolist()


# ----------------------------------------------------------------------------------------------
# The config


def test_the_config_takes_the_new_roles_and_the_datetime_setting() -> None:
    config = parse_config("target: y\ndatetime: drop\ncolumns: {a: {role: boolean}, b: {role: datetime}}\n", "c.yaml")
    assert config.datetime == "drop" and config.columns["a"].role == "boolean"
    for text, words in (
        ("target: y\ndatetime: sometimes\n", "datetime"),
        ("target: y\ncolumns: {a: {role: date}}\n", "columns.a.role"),
        ("target: y\ndrop_columns: [a]\ncolumns: {a: {role: boolean}}\n", "keep one of the two"),
    ):
        with pytest.raises(ConfigError, match=words):
            parse_config(text, "c.yaml")


def test_configs_without_the_datetime_setting_keep_their_fingerprint() -> None:
    # (the dataset version is a hash of the data and this fingerprint: a new version would retrain)
    plain = parse_config("target: y\n", "c.yaml")
    assert "datetime" not in plain.fingerprint()
    assert parse_config("target: y\ndatetime: expand\n", "c.yaml").fingerprint() == plain.fingerprint()
    assert parse_config("target: y\ndatetime: drop\n", "c.yaml").fingerprint() != plain.fingerprint()


def test_a_pinned_boolean_of_long_values_is_rejected_with_one() -> None:
    n = 60
    data = labelled({"answer": [["yes", "certainly"][i % 2] for i in range(n)]}, n)
    with pytest.raises(DatasetRejected, match="such as 'certainly'"):
        prepare(data, DatasetConfig(target="label", columns={"answer": {"role": "boolean"}}))
