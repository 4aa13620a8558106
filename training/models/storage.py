"""Pickle-free model files: the arrays in STEM.npz, everything else in STEM.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def save_model(directory: Path, stem: str, meta: dict[str, Any], **arrays: np.ndarray) -> None:
    # numpy's stubs type **kwds against its allow_pickle flag; the arrays are plain ndarrays.
    np.savez(directory / f"{stem}.npz", **arrays)  # type: ignore[arg-type]
    (directory / f"{stem}.json").write_text(json.dumps(meta, indent=2))


def load_model(directory: Path, stem: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    meta = json.loads((directory / f"{stem}.json").read_text())
    with np.load(directory / f"{stem}.npz", allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    return meta, arrays
