"""Known-name downloads: cached once, checksum verified, corrupt downloads refused. No network:
the HTTP client runs on httpx.MockTransport."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import write_movielens_csv
from training.datasets import DatasetError, load_dataset, registry


def _zip_of(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for path in directory.iterdir():
            bundle.write(path, f"ml-test/{path.name}")
    return buffer.getvalue()


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("CINEREC_CACHE", str(tmp_path / "cache"))
    return _zip_of(write_movielens_csv(tmp_path / "src"))


def _client(payload: bytes, md5_text: str, requests: list[str]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        if request.url.path.endswith(".md5"):
            return httpx.Response(200, text=md5_text)
        return httpx.Response(200, content=payload)

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_published_checksum_download_is_cached(archive: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    known = registry.KnownDataset("ml-test", "https://example.invalid/ml-test.zip", None)
    monkeypatch.setitem(registry.KNOWN, "ml-test", known)
    digest = hashlib.md5(archive, usedforsecurity=False).hexdigest()
    requests: list[str] = []
    path = registry.fetch("ml-test", client=_client(archive, f"MD5 (ml-test.zip) = {digest}\n", requests))
    assert path.read_bytes() == archive
    assert requests == ["/ml-test.zip.md5", "/ml-test.zip"]
    requests.clear()
    registry.fetch("ml-test", client=_client(archive, digest, requests))
    assert requests == ["/ml-test.zip.md5"]  # verified cache hit: no second download
    data = load_dataset(registry.unpack(path))
    assert data.counts["ratings"] == 720


def test_corrupt_download_is_refused_and_deleted(archive: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    known = registry.KnownDataset("ml-test", "https://example.invalid/ml-test.zip", "0" * 32)
    monkeypatch.setitem(registry.KNOWN, "ml-test", known)
    with pytest.raises(DatasetError, match="checksum mismatch"):
        registry.fetch("ml-test", client=_client(archive[:-100], "", []))
    assert not list((registry.cache_dir() / "downloads").iterdir())


def test_unreachable_index_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CINEREC_CACHE", str(tmp_path))
    known = registry.KnownDataset("ml-test", "https://example.invalid/ml-test.zip", None)
    monkeypatch.setitem(registry.KNOWN, "ml-test", known)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route", request=request)

    with pytest.raises(DatasetError, match="cannot fetch the published checksum"):
        registry.fetch("ml-test", client=httpx.Client(transport=httpx.MockTransport(refuse)))


def test_local_archive_of_a_known_name_must_match(tmp_path: Path, archive: bytes) -> None:
    path = tmp_path / "ml-latest-small.zip"
    path.write_bytes(archive)
    with pytest.raises(DatasetError, match="does not match the published checksum"):
        load_dataset(path)
