"""Known dataset names: where to download them and the checksums GroupLens publishes.

A known name is downloaded once into the cache, verified against its MD5 and unpacked.
Where we do not pin the MD5 ourselves, the one GroupLens publishes beside the archive
(`<url>.md5`) is fetched and used. A corrupt or truncated download is deleted and reported.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from training.datasets.canonical import DatasetError

GROUPLENS = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class KnownDataset:
    name: str
    url: str
    md5: str | None  # None: use the checksum file published next to the archive

    @property
    def md5_url(self) -> str:
        return self.url + ".md5"


KNOWN: dict[str, KnownDataset] = {
    d.name: d
    for d in [
        KnownDataset("ml-latest-small", f"{GROUPLENS}/ml-latest-small.zip", "31a303aabbc519bd33d025e44d6c2570"),  # noqa: E501
        KnownDataset("ml-100k", f"{GROUPLENS}/ml-100k.zip", "0e33842e24a9c977be4e0107933c0723"),
        KnownDataset("ml-1m", f"{GROUPLENS}/ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906"),
        KnownDataset("ml-10m", f"{GROUPLENS}/ml-10m.zip", None),
        KnownDataset("ml-20m", f"{GROUPLENS}/ml-20m.zip", None),
        KnownDataset("ml-25m", f"{GROUPLENS}/ml-25m.zip", "6b51fb2759a8657d3bfcbfc42b592ada"),
        KnownDataset("ml-32m", f"{GROUPLENS}/ml-32m.zip", None),
        KnownDataset("ml-latest", f"{GROUPLENS}/ml-latest.zip", None),
    ]
}  # fmt: skip


def cache_dir() -> Path:
    root = os.environ.get("CINEREC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "cinerec"
    )
    return Path(root)


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name: str, *, client: httpx.Client | None = None) -> Path:
    """The cached, verified archive for a known name (downloading it if needed)."""
    known = KNOWN[name]
    target = cache_dir() / "downloads" / Path(known.url).name
    target.parent.mkdir(parents=True, exist_ok=True)
    with client or httpx.Client(follow_redirects=True, timeout=60) as http:
        expected = known.md5 or _published_md5(http, known)
        if target.is_file() and md5_of(target) == expected:
            return target
        partial = target.with_suffix(".part")
        try:
            _download(http, known.url, partial)
        except httpx.HTTPError as exc:
            partial.unlink(missing_ok=True)
            raise DatasetError(f"cannot download {name} from {known.url}: {exc}") from exc
    actual = md5_of(partial)
    if actual != expected:
        partial.unlink(missing_ok=True)
        raise DatasetError(
            f"{name}: checksum mismatch (md5 {actual}, published {expected}); "
            "the download is corrupt or truncated and was deleted"
        )
    partial.replace(target)
    return target


def verify_archive(path: Path, name: str) -> None:
    """A known archive found locally must still match its pinned checksum."""
    known = KNOWN.get(name)
    if known and known.md5 and md5_of(path) != known.md5:
        raise DatasetError(f"{path}: md5 does not match the published checksum of {name}")


def unpack(archive: Path) -> Path:
    """Unpack a zip once into the cache, keyed by its content; return the data directory."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    target = cache_dir() / "unpacked" / f"{archive.stem}-{digest}"
    if not (target / ".complete").is_file():
        try:
            with zipfile.ZipFile(archive) as bundle:
                bad = bundle.testzip()
                if bad is not None:
                    raise DatasetError(f"{archive}: corrupt member {bad}")
                bundle.extractall(target)
        except zipfile.BadZipFile as exc:
            raise DatasetError(f"{archive}: not a valid zip archive ({exc})") from exc
        (target / ".complete").touch()
    return _data_root(target)


def _data_root(directory: Path) -> Path:
    """Archives usually hold one top-level folder; descend into it."""
    entries = [p for p in directory.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return directory


def _published_md5(http: httpx.Client, known: KnownDataset) -> str:
    try:
        response = http.get(known.md5_url)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise DatasetError(f"cannot fetch the published checksum {known.md5_url}: {exc}") from exc
    match = re.search(r"\b([0-9a-f]{32})\b", response.text)
    if not match:
        raise DatasetError(f"{known.md5_url} holds no MD5 checksum")
    return match.group(1)


def _download(http: httpx.Client, url: str, path: Path) -> None:
    with http.stream("GET", url) as response:
        response.raise_for_status()
        total = int(response.headers.get("content-length", 0)) or None
        columns = (*Progress.get_default_columns()[:1], BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns) as progress, path.open("wb") as out:
            task = progress.add_task(f"download {Path(url).name}", total=total)
            for block in response.iter_bytes(1 << 20):
                out.write(block)
                progress.advance(task, len(block))
