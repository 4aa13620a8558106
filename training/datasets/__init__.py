"""Dataset loading: a path (directory, file or zip) or a known name -> one canonical Dataset."""

from __future__ import annotations

import hashlib
from pathlib import Path

from training.datasets import movielens, netflix, registry
from training.datasets.canonical import Dataset, DatasetError

__all__ = ["Dataset", "DatasetError", "load_dataset"]


def load_dataset(spec: str | Path) -> Dataset:
    """Load a dataset from a directory, a single file, a .zip or a known name.

    The layout is detected from the files present, never configured.
    """
    path = Path(spec).expanduser()
    if path.exists():
        name = _name_of(path)
        if path.is_file() and path.suffix == ".zip":
            registry.verify_archive(path, name)
            directory = registry.unpack(path)
        elif path.is_file():
            if netflix.is_sample_file(path):
                dataset = netflix.load_sample(path, name)
                dataset.checksum = _checksum([path])
                return dataset
            directory = path.parent  # e.g. ratings.csv given directly: read its folder
        else:
            directory = path
        return _load_directory(directory, name)
    if str(spec) in registry.KNOWN:
        archive = registry.fetch(str(spec))
        return _load_directory(registry.unpack(archive), str(spec))
    known = ", ".join(registry.KNOWN)
    raise DatasetError(f"{spec}: no such file or directory, and not a known dataset ({known})")


def _load_directory(directory: Path, name: str) -> Dataset:
    layout = movielens.detect(directory)
    if layout is not None:
        dataset = movielens.load(directory, layout, name)
    elif netflix.detect(directory) is not None:
        dataset = netflix.load_original(directory, name)
    else:
        samples = [p for p in sorted(directory.glob("*.csv")) if netflix.is_sample_file(p)]
        if not samples:
            raise DatasetError(
                f"{directory}: no known layout (looked for MovieLens ratings.csv/ratings.dat/u.data, "
                "Netflix training_set/ or combined_data_*.txt, or the Netflix sample CSV)"
            )
        dataset = netflix.load_sample(samples[0], name)
    dataset.checksum = _checksum(_data_files(directory))
    return dataset


def _data_files(directory: Path) -> list[Path]:
    patterns = ["*.csv", "*.dat", "u.data", "u.item", "*.txt", "training_set/*.txt"]
    files = {p for pattern in patterns for p in directory.glob(pattern) if p.is_file()}
    return sorted(files)


def _checksum(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def _name_of(path: Path) -> str:
    stem = path.name
    for suffix in (".zip", ".csv"):
        stem = stem.removesuffix(suffix)
    return stem or path.resolve().name
