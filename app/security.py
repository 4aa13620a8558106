"""API keys: writes and admin endpoints need one in X-API-Key when API_KEYS is set."""

from __future__ import annotations

import hmac

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from app.errors import Unauthorized

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="One of the keys in API_KEYS (when the operator set any)."
)


async def require_key(request: Request, key: str | None = Security(api_key_header)) -> None:
    """Accept the request when no keys are configured or the key matches one of them.

    Keys are compared in constant time (every configured key is compared, whatever matches)
    and never logged or echoed.
    """
    keys: tuple[str, ...] = request.app.state.settings.api_key_list
    if not keys:
        return
    given = (key or "").encode()
    matched = False
    for candidate in keys:
        matched |= hmac.compare_digest(given, candidate.encode())
    if not matched:
        raise Unauthorized()
