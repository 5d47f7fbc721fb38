"""Shared fixtures: paths, and random-weight models written once per session."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CFG = ROOT / "cfg"


def need_shared(*parts: str) -> Path:
    """A path under ../shared, or skip with the reason when ../shared is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared not found: {path.relative_to(ROOT.parent)} is needed")
    return path


@pytest.fixture(scope="session")
def random_model(tmp_path_factory):
    """random_model(cfg_path, seed=0) -> (Network with random weights, weights path)."""
    import pydarknet

    cache: dict = {}
    folder = tmp_path_factory.mktemp("weights")

    def make(cfg: Path | str, seed: int = 0):
        key = (str(cfg), seed)
        if key not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # our cfgs must parse without warnings
                net = pydarknet.Network(cfg)
            path = folder / f"{Path(cfg).stem}-{seed}.weights"
            net.save_random_weights(path, seed)
            cache[key] = (net, path)
        return cache[key]

    return make
