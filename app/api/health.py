"""Liveness and the loaded model."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.common import JSONRoute
from app.deps import ServicesDep
from app.schemas import Health

router = APIRouter(route_class=JSONRoute, tags=["health"])


@router.get(
    "/health",
    response_model=Health,
    summary="Service status and the loaded model",
    description="The bundle being served: its version, dataset, build time, format and code version, "
    "row counts and the dataset's rating scale (what ratings in request bodies must lie within).",
)
async def health(services: ServicesDep) -> dict:
    manifest = services.bundle.manifest
    return {
        "status": "ok",
        "model": {
            "version": manifest["version"],
            "dataset": manifest["dataset"]["name"],
            "trained_at": manifest["created_at"],
            "format_version": manifest["format_version"],
            "code_version": manifest["code_version"],
            "counts": manifest["counts"],
            "rating_scale": manifest["dataset"]["rating_scale"],
        },
    }
