"""examples/penguins/penguins.csv encoded by hand for the first-party algorithm twins' tests:
label first, then the four body measurements, headerless, as datadrop's prepare step writes them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

PENGUINS = Path(__file__).resolve().parents[2] / "examples" / "penguins" / "penguins.csv"
MEASUREMENTS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
SPECIES = {"Adelie": 0, "Chinstrap": 1, "Gentoo": 2}


def penguins() -> tuple[np.ndarray, np.ndarray]:
    """(measurements (n, 4), species index (n,)) for the rows with every measurement."""
    with PENGUINS.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if all(row[column] != "NA" for column in MEASUREMENTS)]
    x = np.array([[float(row[column]) for column in MEASUREMENTS] for row in rows])
    y = np.array([SPECIES[row["species"]] for row in rows], dtype=np.float64)
    return x, y


def split(rows: int, train_share: float = 0.75, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(rows)
    cut = int(rows * train_share)
    return order[:cut], order[cut:]


def write_channel(directory: Path, label: np.ndarray, features: np.ndarray) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    np.savetxt(directory / "part-0.csv", np.column_stack([label, features]), delimiter=",", fmt="%.6g")
    return directory
