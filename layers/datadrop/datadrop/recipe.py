"""The encoding contract: how a raw row becomes the numbers a model sees (the recipe).

`datadrop.dataprep` fits a recipe on the training rows and encodes the splits with polars; the
serving code (`datadrop.serving.inference`) implements the same rules in plain Python, and so does
`encode_row` here; tests check all three against each other:

* Every value is read as text and stripped with Python's `str.strip()` (no arguments).
* A value is *missing* when the stripped text is one of `recipe["missing_tokens"]`.
* numeric feature: missing, not a number, or not finite -> `fill`; else `float(text)`. When the
  feature has a `number_format` (a column written with thousands separators or a decimal comma),
  a value matching its `pattern` in full first loses every character of `remove` and has its
  `decimal` character replaced by "." (see `NUMBER_FORMATS`).
  "A number" is whatever Python's `float()` accepts, including "1_000" and non-ASCII decimal
  digits such as "١٢" (see `parse_number`; `number_expr`, the polars version, emulates those two cases).
* categorical feature: index of the text in `categories`, as a float; missing or unseen -> -1.0.
  When the feature has `"normalise": "casefold"`, the text (already known not to be missing) is
  looked up as `str.casefold()` gives it (see `CATEGORY_NORMALISATIONS`), so "Dream" and "dream"
  are one level.
* boolean feature: 1.0 when the text, case-folded, is one of the feature's `true` spellings, 0.0 when
  one of its `false` spellings; missing or anything else -> -1.0 (see `datadrop.roles`).
* datetime feature (one per part of a date column, read from the feature's `column`): the feature's
  `part` of the date the text stands for (`roles.parse_datetime`, `roles.datetime_part`); missing or
  not a date -> `fill`.
* label: index of the target text in `recipe["classes"]`; labels equal but for case, spacing or
  number format were merged into one class before splitting (`merge_labels`, see `label_key`), and
  the test labels are written merged.
* regression (`recipe["problem_type"] == "regression"`, `classes` empty): the label is the target's
  float (as `parse_number` reads it; rows whose target is not a number are dropped and counted), and
  the test labels are those floats.

Rows are written as headerless CSV, label first, then the features in `recipe["features"]` order,
with floats written so that `float(field)` gives back the same float64.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence

import polars as pl

import datadrop.roles as column_roles

RECIPE_FORMAT = "datadrop-recipe/1"

# How a categorical feature's (stripped, present) value is normalised, by the name the recipe
# carries; the inference script has the same table (it cannot import this module) and a test
# checks they agree.
CATEGORY_NORMALISATIONS: dict[str, Callable[[str], str]] = {"casefold": str.casefold}

# polars' string-to-float cast accepts exactly what Python's float() accepts for ASCII text, except
# PEP 515 underscores ("1_000"); float() also reads any Unicode decimal digit ("١٢" is 12.0).
# Columns holding "_" or non-ASCII text take a slower path that emulates both (`number_expr`).
_DIGITS = r"[0-9](?:_?[0-9])*"
_UNDERSCORE_NUMBER = rf"^[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?$"


# Numbers written for people, which float() does not read: thousands separators ("1,234,567.5",
# "1.234.567,5", "1 234") or a decimal comma ("3,5"). A text column whose present training values
# are (NUMERIC_SHARE of them) plain numbers or numbers written in one of these ways, with at least
# one written that way, is read as numbers in that format. `pattern` is matched in full (no
# anchors, so Python's re.fullmatch and polars' anchored regex agree); ASCII digits only.
NUMBER_FORMATS: dict[str, dict[str, str]] = {
    "thousands_comma": {
        "pattern": r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?",
        "remove": ",",
        "decimal": ".",
        "example": "1,234.5",
    },
    "decimal_comma": {
        "pattern": r"[+-]?(?:[0-9]{1,3}(?:\.[0-9]{3})+(?:,[0-9]+)?|[0-9]+,[0-9]+)",
        "remove": ".",
        "decimal": ",",
        "example": "1.234,5",
    },
    "thousands_space": {
        "pattern": "[+-]?[0-9]{1,3}(?:[ '\u00a0\u202f][0-9]{3})+(?:\\.[0-9]+)?",
        "remove": " '\u00a0\u202f",
        "decimal": ".",
        "example": "1 234.5",
    },
    "thousands_space_decimal_comma": {
        "pattern": "[+-]?(?:[0-9]{1,3}(?:[ '\u00a0\u202f][0-9]{3})+(?:,[0-9]+)?|[0-9]+,[0-9]+)",
        "remove": " '\u00a0\u202f",
        "decimal": ",",
        "example": "1 234,5",
    },
}


def parse_number(text: str) -> float | None:
    """The finite float a stripped value stands for (Python's float()), or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def encode_row(recipe: Mapping, row: Mapping[str, str]) -> list[float]:
    """Encode one raw row (column name -> text as uploaded) with a recipe: the features, in order."""
    missing = set(recipe["missing_tokens"])
    encoded: list[float] = []
    for feature in recipe["features"]:
        text = (row.get(column_roles.source_column(feature)) or "").strip()
        if feature["kind"] in column_roles.KINDS:
            encoded.append(column_roles.encode_value(feature, text, missing))
        elif feature["kind"] == "numeric":
            number = None if text in missing else parse_number(_unformatted(text, feature.get("number_format")))
            encoded.append(feature["fill"] if number is None else number)
        elif text in missing:
            encoded.append(-1.0)
        else:
            normalise = feature.get("normalise")
            index = _bisect_index(feature["categories"], CATEGORY_NORMALISATIONS[normalise](text) if normalise else text)
            encoded.append(-1.0 if index is None else float(index))
    return encoded


def _unformatted(text: str, number_format: Mapping[str, str] | None) -> str:
    """A number written with separators (matching the format's pattern in full) as float() reads it."""
    if number_format is None or not re.fullmatch(number_format["pattern"], text):
        return text
    for char in number_format["remove"]:
        text = text.replace(char, "")
    return text.replace(number_format["decimal"], ".")


def _bisect_index(sorted_values: Sequence[str], value: str) -> int | None:
    lo, hi = 0, len(sorted_values)
    while lo < hi:
        mid = (lo + hi) // 2
        if sorted_values[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < len(sorted_values) and sorted_values[lo] == value else None


def label_key(label: str) -> str:
    """What target labels that mean the same class share: the same number, or the same words whatever their case."""
    number = parse_number(label)
    return repr(number) if number is not None else " ".join(label.casefold().split())


def recipe_number_format(name: str) -> dict[str, str]:
    """What a numeric feature of this format carries in the recipe (what the inference script needs)."""
    number_format = NUMBER_FORMATS[name]
    return {
        "name": name,
        "pattern": number_format["pattern"],
        "remove": number_format["remove"],
        "decimal": number_format["decimal"],
    }


def number_expr(name: str, missing: list[str], special: bool = True, number_format: dict[str, str] | None = None) -> pl.Expr:
    """Float64 of a stripped value that is present and a finite number (see `parse_number`), else null.

    `special` must be true when the column may hold "_" or non-ASCII text (any non-ASCII text or "_");
    `number_format`: one of NUMBER_FORMATS, when the column is written that way.
    """
    value = pl.col(name)
    text = value
    if number_format is not None:
        rewritten = text.str.replace_all(f"[{re.escape(number_format['remove'])}]", "").str.replace_all(
            number_format["decimal"], ".", literal=True
        )
        text = pl.when(text.str.contains(f"^(?:{number_format['pattern']})$")).then(rewritten).otherwise(text)
    if special:
        decimals, digits = _unicode_decimals()
        text = text.str.replace_many(decimals, digits)  # what float() does to "١٢" before parsing
        text = pl.when(text.str.contains(_UNDERSCORE_NUMBER)).then(text.str.replace_all("_", "", literal=True)).otherwise(text)
    parsed = text.cast(pl.Float64, strict=False)
    return pl.when(parsed.is_finite() & ~value.is_in(missing)).then(parsed).alias(name)


@functools.cache
def _unicode_decimals() -> tuple[list[str], list[str]]:
    """Every non-ASCII decimal digit and the ASCII digit float() reads it as."""
    decimals = [chr(code) for code in range(0x80, 0x110000) if chr(code).isdecimal()]
    return decimals, [str(unicodedata.decimal(char)) for char in decimals]
