"""edgeinfer_load.contract: the engine's layout, cosine and golden set are the contract's, under both names."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest

import edgeinfer_contract
import edgeinfer_load as lg
from testbed.packages import foreign_imports, link_problems

REPO = Path(__file__).resolve().parents[3]


def test_the_engine_takes_layout_cosine_and_golden_set_from_the_contract() -> None:
    assert (lg.LATENT_DIM, lg.WINDOW, lg.CHANNELS) == (64, 100, 9)
    assert lg.cosine is edgeinfer_contract.cosine
    assert lg.GoldenSet is edgeinfer_contract.GoldenSet


def test_in_the_collection_the_engine_takes_the_contract_from_module_utils() -> None:
    """On an edge only module_utils exist: _load must reach the contract as its sibling _contract."""
    base = "ansible_collections.edgeinfer.deploy.plugins.module_utils"
    seam = importlib.import_module(f"{base}._load.contract")
    contract = importlib.import_module(f"{base}._contract")
    assert seam.GoldenSet is contract.GoldenSet and seam.cosine is contract.cosine


def test_module_utils_reach_every_module_of_the_load_engine_through_a_link() -> None:
    assert link_problems("edgeinfer_load", "_load") == []


def test_the_engine_imports_nothing_but_the_standard_library_and_the_contract() -> None:
    """It runs on a bare edge Python: no third-party package, and of the project only the contract."""
    assert list(foreign_imports("edgeinfer_load", allowed=("edgeinfer_contract",))) == []


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([1, 0], [1, 0], 1.0),
        ([1, 0], [0, 1], 0.0),
        ([1, 2, 3], [-1, -2, -3], -1.0),
        ([1, 0], [1, 0, 0], -1.0),  # length mismatch is a miss
        ([0, 0], [1, 1], -1.0),  # zero vector is a miss
        ([math.nan, 1], [1, 1], -1.0),
        ([], [], -1.0),
    ],
)
def test_cosine_of_the_engine_misses_on_mismatch_zero_and_nan(a, b, expected):
    assert lg.cosine(a, b) == pytest.approx(expected)
