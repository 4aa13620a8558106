"""Service settings, read from the environment and validated at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    artifacts_dir: Path = Path("artifacts")
    database_url: str = "sqlite+aiosqlite:///data/cinerec.db"
    # Apply the Alembic migrations at start-up (`make migrate` does it as a command).
    migrate_on_start: bool = False
    # Comma-separated keys; when set, writes and admin endpoints need one in X-API-Key.
    api_keys: str = ""
    # Request bodies larger than this are refused with 413 (10,000 prediction pairs take ~0.5 MB).
    max_body_bytes: int = 2 * 1024 * 1024
    # How long a process may keep a user's cached feedback and ranking. 0: until that user's
    # next write through this process, which is exact with one process (which then also lists
    # the users with stored feedback at start-up, so that reading anyone else's skips the
    # database). With several replicas
    # or workers sharing the database, a write through one is seen by the others only when
    # their entry expires: this is the bound on that staleness.
    feedback_cache_seconds: float = Field(0.0, ge=0)
    # Memory for the answers kept rendered (JSON bytes, every route together, LRU); a
    # repeated request is answered from there. 0 keeps none.
    rendered_cache_mb: float = Field(64.0, ge=0)
    # Answer visitors (POST /recommendations) in a second process beside the server, which
    # loads the bundle again (~0.5 GB more memory on ml-latest-small); false: in the server's
    # thread pool. See app/services/visitor_process.py.
    visitor_process: bool = True
    # Comma-separated origins allowed by CORS ('*' for any); empty = no CORS headers.
    cors_origins: str = ""

    @property
    def api_key_list(self) -> tuple[str, ...]:
        return tuple(key.strip() for key in self.api_keys.split(",") if key.strip())

    log_level: str = "info"
    # "json": one JSON object per line with the request id; "text" for people at a terminal.
    log_format: str = "json"
    # The home page's rows (kinds, titles, order); see app/services/home.py.
    home_config: Path = Path(__file__).resolve().parent / "home.json"

    @property
    def rendered_cache_bytes(self) -> int:
        return int(self.rendered_cache_mb * 2**20)

    @property
    def bundle_path(self) -> Path:
        """The bundle served: ARTIFACTS_DIR/current (or ARTIFACTS_DIR itself if it is one)."""
        current = self.artifacts_dir / "current"
        return current if current.exists() else self.artifacts_dir
