"""Cleaning rules of prepare: look-alike target labels merged, categorical values case-folded, junk tokens
missing; and the inference script encoding raw rows the same way prepare encoded the training rows."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest
from datadrop import dataprep
from datadrop.config import DEFAULT_MISSING_VALUES, DatasetConfig
from datadrop.dataprep import prepare
from datadrop.recipe import CATEGORY_NORMALISATIONS, encode_row
from datadrop.serving import inference
from pydantic import ValidationError

from tests.held_out import held_out_records, written_splits
from tests.unit.test_dataprep import assert_matches_reference, to_csv

ISLANDS = ("Dream", "Biscoe", "Torgersen")


def messy_table(n: int = 240, seed: int = 7) -> tuple[list[str], list[list[str]]]:
    """Labels and a categorical column written inconsistently (case, spaces, '1' vs '1.0'), and junk numbers."""
    rng = random.Random(seed)
    label_spellings = {"Adelie": ["Adelie", "Adelie", "adelie", " ADELIE "], "1": ["1", "1", "1.0", "01"]}
    header = ["species", "island", "mass", "note"]
    rows = []
    for i in range(n):
        label = ["Adelie", "1", "Gentoo"][i % 3]
        spelling = rng.choice(label_spellings.get(label, [label]))
        island = ISLANDS[(i + rng.randrange(2)) % 3]
        island = rng.choice([island, island.lower(), island.upper(), f" {island.lower()} "])
        mass = rng.choice([f"{3000 + 10 * (i % 3) * 100 + rng.randrange(300)}", "-", "NA", "?", "n/a", "null", "None"])
        rows.append([spelling, island, mass, rng.choice(["a", "b"])])
    return header, rows


def test_labels_equal_but_for_case_spacing_or_number_format_become_their_most_frequent_spelling() -> None:
    header, rows = messy_table()
    prepared = prepare(to_csv(header, rows), DatasetConfig(target="species"))
    spellings = Counter(row[0].strip() for row in rows)
    expected_merged = {
        "Adelie": sorted(label for label in spellings if label.casefold() == "adelie" and label != "Adelie"),
        "1": sorted(label for label in spellings if label in ("1.0", "01")),
    }
    assert spellings["Adelie"] > max(spellings[label] for label in expected_merged["Adelie"])
    assert prepared.recipe["classes"] == ["1", "Adelie", "Gentoo"]
    assert prepared.report.target.merged == expected_merged
    assert sum(prepared.report.target.classes.values()) == prepared.report.rows.usable
    assert set(prepared.test_labels) == {"1", "Adelie", "Gentoo"}
    notes = {note.detail: note.count for note in prepared.report.normalisations if note.step == "labels_merged"}
    assert len(notes) == 2
    for kept, others in expected_merged.items():
        (count,) = [count for detail, count in notes.items() if f"into the class {kept!r}" in detail]
        assert count == sum(spellings[label] for label in others)
    assert not prepared.report.warnings
    assert_matches_reference(to_csv(header, rows), DatasetConfig(target="species"), prepared)


def test_merge_labels_false_keeps_look_alike_labels_apart_and_warns() -> None:
    header, rows = messy_table()
    config = DatasetConfig(target="species", merge_labels=False)
    prepared = prepare(to_csv(header, rows), config)
    assert "adelie" in prepared.recipe["classes"] and "1.0" in prepared.recipe["classes"]
    assert prepared.report.target.merged == {}
    assert any("differ only in case" in warning for warning in prepared.report.warnings)
    assert_matches_reference(to_csv(header, rows), config, prepared)


def test_categorical_values_are_one_level_whatever_their_case_and_spacing() -> None:
    header, rows = messy_table()
    prepared = prepare(to_csv(header, rows), DatasetConfig(target="species"))
    (island,) = [feature for feature in prepared.recipe["features"] if feature["name"] == "island"]
    assert island["categories"] == sorted(name.casefold() for name in ISLANDS)
    assert island["normalise"] == "casefold"
    summary = next(column for column in prepared.report.columns if column.name == "island").summary
    assert summary is not None and summary.kind == "categorical" and summary.levels == len(ISLANDS)
    assert ("categories_normalised", "island") in {(note.step, note.column) for note in prepared.report.normalisations}
    recipe = inference.compile_recipe(prepared.recipe)
    position = recipe.feature_names.index("island")
    for spelling in ("Dream", "dream", " DREAM ", "\tdReAm\n"):
        row = {"island": spelling, "mass": "3100", "note": "a"}
        assert recipe.encode(row)[position] == island["categories"].index("dream")
        assert encode_row(prepared.recipe, row) == recipe.encode(row)


def test_normalise_categories_false_keeps_case() -> None:
    header, rows = messy_table()
    config = DatasetConfig(target="species", normalise_categories=False)
    prepared = prepare(to_csv(header, rows), config)
    (island,) = [feature for feature in prepared.recipe["features"] if feature["name"] == "island"]
    assert "normalise" not in island and {"Dream", "dream", "DREAM"} <= set(island["categories"])
    assert_matches_reference(to_csv(header, rows), config, prepared)


def test_a_present_value_that_folds_into_a_missing_token_encodes_alike_in_prepare_and_serving() -> None:
    # "NAN" is a value (not a default missing token) whose case-folded form "nan" is one.
    rows = [[["x", "y"][i % 2], ["NAN", "Red", "red", "NA"][i % 4], str(i)] for i in range(80)]
    header = ["target", "colour", "n"]
    config = DatasetConfig(target="target")
    prepared = prepare(to_csv(header, rows), config)
    assert_matches_reference(to_csv(header, rows), config, prepared)
    recipe = inference.compile_recipe(prepared.recipe)
    for record in held_out_records(prepared):
        row = dict(zip(["colour", "n"], record))
        assert recipe.encode(row) == encode_row(prepared.recipe, row)


@pytest.mark.parametrize("text", ["Dream", "STRASSE", "Straße", "İstanbul", "ΣΊΣΥΦΟΣ", "ﬁne", "K", "", " a b "])
def test_the_inference_script_normalises_categories_exactly_as_prepare_does(text: str) -> None:
    assert set(inference.CATEGORY_NORMALISATIONS) == set(CATEGORY_NORMALISATIONS)
    for name, normalise in CATEGORY_NORMALISATIONS.items():
        assert inference.CATEGORY_NORMALISATIONS[name](text) == normalise(text)


def test_an_unknown_normalisation_in_a_recipe_is_refused_by_the_inference_script() -> None:
    header, rows = messy_table()
    recipe = prepare(to_csv(header, rows), DatasetConfig(target="species")).recipe
    for feature in recipe["features"]:
        if feature["kind"] == "categorical":
            feature["normalise"] = "uppercase"
    with pytest.raises(ValueError, match="unknown normalisation 'uppercase'"):
        inference.compile_recipe(recipe)


def test_junk_tokens_in_a_numeric_column_are_missing_and_filled_with_the_training_median() -> None:
    assert {"", "NA", "n/a", "?", "-", "null", "None"} <= set(DEFAULT_MISSING_VALUES)
    header, rows = messy_table()
    prepared = prepare(to_csv(header, rows), DatasetConfig(target="species"))
    mass = next(column for column in prepared.report.columns if column.name == "mass")
    assert mass.role == "numeric" and mass.summary is not None and mass.summary.kind == "numeric"
    assert mass.summary.not_numbers == 0  # every junk token counted as missing, none as "not a number"
    assert mass.missing == sum(row[2] in DEFAULT_MISSING_VALUES for row in rows)
    assert mass.fill == mass.summary.median


def test_a_messy_file_prepares_to_the_same_bytes_twice() -> None:
    header, rows = messy_table()
    data = to_csv(header, rows)
    first, second = prepare(data, DatasetConfig(target="species")), prepare(data, DatasetConfig(target="species"))
    assert written_splits(first) == written_splits(second)
    assert first.test_labels == second.test_labels and first.recipe == second.recipe
    assert first.report == second.report


def numbers_table(write: Callable[[float], str], n: int = 90) -> tuple[list[str], list[list[str]], list[float]]:
    """A target, a number column written by `write`, an ID column like "1,2,3" and a text column with a few numbers."""
    rng = random.Random(11)
    values = [round(rng.uniform(-5000, 2_000_000), 2) for _ in range(n)]
    rows = [
        [["a", "b"][i % 2], write(value), f"{i % 9},{i % 5},{i % 7}", rng.choice(["red", "blue", "1,234"])]
        for i, value in enumerate(values)
    ]
    return ["target", "amount", "ids", "colour"], rows, values


def _thousands_comma(value: float) -> str:
    return f"{value:,.2f}"


def _decimal_comma(value: float) -> str:
    return f"{value:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")


def _thousands_space(value: float) -> str:
    return f"{value:,.2f}".replace(",", " ").replace(".", ",")


@pytest.mark.parametrize(
    ("write", "delimiter", "format_name"),
    [
        (_thousands_comma, ",", "thousands_comma"),
        (_decimal_comma, ";", "decimal_comma"),
        (_thousands_space, ",", "thousands_space_decimal_comma"),
        (_thousands_space, "\t", "thousands_space_decimal_comma"),
        (lambda value: f"{value:,.2f}".replace(",", "'"), ",", "thousands_space"),
    ],
)
def test_numbers_written_with_separators_are_read_as_numbers(
    write: Callable[[float], str], delimiter: str, format_name: str
) -> None:
    header, rows, values = numbers_table(write)
    data = to_csv(header, rows, delimiter=delimiter)
    config = DatasetConfig(target="target")
    prepared = prepare(data, config)
    (amount,) = [feature for feature in prepared.recipe["features"] if feature["name"] == "amount"]
    assert amount["kind"] == "numeric" and amount["number_format"]["name"] == format_name
    report = next(column for column in prepared.report.columns if column.name == "amount")
    assert report.summary is not None and report.summary.kind == "numeric" and report.summary.not_numbers == 0
    assert min(values) <= report.summary.min < report.summary.max <= max(values)
    (note,) = [note for note in prepared.report.normalisations if note.step == "numbers_with_separators"]
    with_separator = sum(abs(value) >= 1000 for value in values)
    assert note.column == "amount"
    assert note.count == (with_separator if format_name in ("thousands_comma", "thousands_space") else len(values))
    assert {row[0] for row in rows} == set(prepared.recipe["classes"])
    if delimiter == ",":
        assert_matches_reference(data, config, prepared)
    # each raw value is read as the number it was written from, by prepare's reference and the inference script
    recipe = inference.compile_recipe(prepared.recipe)
    position = recipe.feature_names.index("amount")
    for row, value in zip(rows, values):
        raw = dict(zip(header, row))
        assert encode_row(prepared.recipe, raw)[position] == value
        assert recipe.encode(raw)[position] == value
    assert recipe.encode({"amount": str(values[0])})[position] == values[0]  # plain numbers still read
    assert recipe.encode({"amount": "1,2,3"})[position] == amount["fill"]


def test_ids_and_mixed_text_with_commas_are_not_read_as_numbers() -> None:
    header, rows, _ = numbers_table(_thousands_comma)
    prepared = prepare(to_csv(header, rows), DatasetConfig(target="target"))
    roles = {column.name: column.role for column in prepared.report.columns}
    assert roles["colour"] == "categorical" and roles["ids"] != "numeric"
    (colour,) = [feature for feature in prepared.recipe["features"] if feature["name"] == "colour"]
    assert "1,234" in colour["categories"]
    assert [note.column for note in prepared.report.normalisations if note.step == "numbers_with_separators"] == ["amount"]


def test_a_column_mostly_but_not_consistently_written_with_separators_stays_text() -> None:
    header, rows, _ = numbers_table(_thousands_comma)
    for row in rows[::5]:
        row[1] = "about " + row[1]  # a fifth written as text
    prepared = prepare(to_csv(header, rows), DatasetConfig(target="target"))
    roles = {column.name: column.role for column in prepared.report.columns}
    assert roles["amount"] != "numeric"
    assert not [note for note in prepared.report.normalisations if note.step == "numbers_with_separators"]


def _lines_with_bad_rows(n: int, bad: dict[int, str]) -> tuple[list[str], list[int]]:
    """CSV lines of a valid table (header first) with some data lines replaced by rows of the wrong field count;
    and the 1-based line numbers of those."""
    header, rows = messy_table(n)
    lines = to_csv(header, rows).decode().splitlines()
    for index, line in bad.items():
        lines[index] = line
    return lines, sorted(index + 1 for index in bad)


def test_a_few_malformed_rows_are_dropped_counted_and_named() -> None:
    lines, bad_lines = _lines_with_bad_rows(300, {7: "Adelie,Dream,3100,a,extra", 120: "Gentoo,Biscoe"})
    prepared = prepare(("\n".join(lines) + "\n").encode(), DatasetConfig(target="species"))
    report = prepared.report
    assert report.rows.malformed == 2 and report.rows.read == 300 and report.summary().rows_dropped["malformed"] == 2
    (note,) = [note for note in report.normalisations if note.step == "malformed_rows_dropped"]
    assert note.count == 2 and all(str(line) in note.detail for line in bad_lines)
    # the same splits as the file without those lines
    without = [line for number, line in enumerate(lines, 1) if number not in bad_lines]
    clean = prepare(("\n".join(without) + "\n").encode(), DatasetConfig(target="species"))
    assert written_splits(prepared) == written_splits(clean)
    assert prepared.recipe == clean.recipe


def test_malformed_rows_are_found_after_quoted_line_breaks() -> None:
    header, rows = messy_table(300)
    rows[3][3] = "two\nlines"
    lines = to_csv(header, rows).decode().split("\n")  # the quoted value spans lines 5 and 6
    lines[50] = "Adelie,Dream,3100"
    prepared = prepare("\n".join(lines).encode(), DatasetConfig(target="species"))
    (note,) = [note for note in prepared.report.normalisations if note.step == "malformed_rows_dropped"]
    assert "lines 51)" in note.detail and note.count == 1


def test_more_malformed_rows_than_allowed_reject_the_file_with_the_first_bad_lines() -> None:
    bad = {index: "Adelie,Dream" for index in range(10, 200, 19)}  # 10 of 300 rows: above 1%
    lines, bad_lines = _lines_with_bad_rows(300, bad)
    data = ("\n".join(lines) + "\n").encode()
    with pytest.raises(dataprep.DatasetRejected) as rejected:
        prepare(data, DatasetConfig(target="species"))
    reason = rejected.value.reason
    assert f"line {bad_lines[0]} has 2 fields" in reason and "10 of 300 rows" in reason
    assert ", ".join(str(line) for line in bad_lines) in reason and "max_malformed_share" in reason
    assert prepare(data, DatasetConfig(target="species", max_malformed_share=0.05)).report.rows.malformed == 10
    one_bad = ("\n".join(_lines_with_bad_rows(300, {5: "Adelie,Dream"})[0]) + "\n").encode()
    assert prepare(one_bad, DatasetConfig(target="species")).report.rows.malformed == 1
    with pytest.raises(dataprep.DatasetRejected, match="1 of 300 rows .* max_malformed_share"):
        prepare(one_bad, DatasetConfig(target="species", max_malformed_share=0))


def roles_table(n: int = 120) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(3)
    words = ["penguin", "island", "colony", "measured", "near", "the", "shore", "at", "dawn", "after", "storm"]
    rows = [
        [
            ["a", "b"][i % 2],
            str(rng.randrange(5)),  # small whole numbers: numeric unless pinned
            f"{rng.uniform(0, 10):.2f}",
            " ".join(rng.choice(words) for _ in range(8)),  # free text
            rng.choice(["x", "y"]),
        ]
        for i in range(n)
    ]
    return ["target", "code", "size", "comment", "kind"], rows


def _roles(prepared: dataprep.PreparedDataset) -> dict[str, tuple[str, str | None]]:
    return {column.name: (column.role, column.reason) for column in prepared.report.columns}


def test_free_text_columns_are_dropped_and_said_so() -> None:
    header, rows = roles_table()
    prepared = prepare(to_csv(header, rows), DatasetConfig(target="target"))
    roles = _roles(prepared)
    assert roles["comment"] == ("dropped", "free_text") and roles["code"] == ("numeric", None)
    assert ("column_dropped", "comment") in {(note.step, note.column) for note in prepared.report.normalisations}


def test_the_config_pins_column_roles() -> None:
    header, rows = roles_table()
    config = DatasetConfig.model_validate(
        {
            "target": "target",
            "columns": {"code": {"role": "categorical"}, "comment": {"role": "categorical"}, "size": {"role": "id"}},
        }
    )
    prepared = prepare(to_csv(header, rows), config)
    roles = _roles(prepared)
    assert roles["code"] == ("categorical", None) and roles["comment"] == ("categorical", None)
    assert roles["size"] == ("dropped", "pinned") and roles["kind"] == ("categorical", None)
    (code,) = [feature for feature in prepared.recipe["features"] if feature["name"] == "code"]
    assert code["kind"] == "categorical" and 2 <= len(code["categories"]) and set(code["categories"]) <= {row[1] for row in rows}
    assert_matches_reference(to_csv(header, rows), config, prepared)
    kind_as_numeric = DatasetConfig.model_validate({"target": "target", "columns": {"kind": {"role": "numeric"}}})
    with pytest.raises(dataprep.DatasetRejected, match="'kind' is pinned as numeric .* none of its training values"):
        prepare(to_csv(header, rows), kind_as_numeric)


def test_pinned_roles_are_checked_against_the_file_and_the_config() -> None:
    header, rows = roles_table()
    data = to_csv(header, rows)
    with pytest.raises(dataprep.DatasetRejected, match=r"columns names a column .* 'Size' \(did you mean 'size'\?\)"):
        prepare(data, DatasetConfig.model_validate({"target": "target", "columns": {"Size": {"role": "drop"}}}))
    with pytest.raises(dataprep.DatasetRejected, match="columns lists the target column 'target'"):
        prepare(data, DatasetConfig.model_validate({"target": "target", "columns": {"target": {"role": "drop"}}}))
    with pytest.raises(ValidationError, match="role"):
        DatasetConfig.model_validate({"target": "target", "columns": {"size": {"role": "date"}}})
    with pytest.raises(ValidationError, match="'size' is in drop_columns but columns.size.role is numeric"):
        DatasetConfig.model_validate({"target": "t", "drop_columns": ["size"], "columns": {"size": {"role": "numeric"}}})


def test_thousands_dots_without_decimals_are_read_in_a_semicolon_file() -> None:
    header, rows, values = numbers_table(lambda value: f"{round(value):,}".replace(",", "."))
    big = [row for row, value in zip(rows, values) if abs(value) >= 1_000_000]
    assert big, "some values need two dots"
    prepared = prepare(to_csv(header, rows, delimiter=";"), DatasetConfig(target="target"))
    (amount,) = [feature for feature in prepared.recipe["features"] if feature["name"] == "amount"]
    assert amount["number_format"]["name"] == "decimal_comma"
    recipe = inference.compile_recipe(prepared.recipe)
    position = recipe.feature_names.index("amount")
    for row, value in zip(rows, values):
        assert recipe.encode(dict(zip(header, row)))[position] == round(value)
