"""Operator routes: activate a new bundle without a restart."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from app.api.common import UNAUTHORIZED, JSONRoute
from app.deps import Services, ServicesDep, freeze_heap
from app.errors import BundleRejected
from app.openapi import errors
from app.schemas import Reloaded
from app.security import require_key
from training.bundle import BundleError, read_bundle

router = APIRouter(route_class=JSONRoute, tags=["admin"], dependencies=[Depends(require_key)])
log = logging.getLogger("cinerec")


@router.post(
    "/admin/reload",
    response_model=Reloaded,
    summary="Load ARTIFACTS_DIR/current beside the serving bundle and swap to it",
    description="The new bundle is read and verified completely before the swap; requests in flight "
    "finish on the bundle they started with. A missing, corrupt or incomplete bundle is refused (409) "
    "and the old one keeps serving.",
    responses={
        **UNAUTHORIZED,
        409: errors(
            "The new bundle was refused; the old one keeps serving.",
            BundleRejected(
                "artifacts/current: als_item_factors.npy does not match its checksum in manifest.json "
                "(tampered or corrupt); still serving 20261122T101500000000Z"
            ),
        ),
    },
)
async def reload(request: Request, services: ServicesDep) -> dict:
    settings = request.app.state.settings
    previous = services.bundle.version
    try:
        bundle = await run_in_threadpool(read_bundle, settings.bundle_path)
    except BundleError as exc:
        log.error("reload refused: %s", exc)
        raise BundleRejected(f"{exc}; still serving {previous}") from None
    metrics = request.app.state.metrics
    fresh = await run_in_threadpool(
        Services.create,
        bundle,
        services.home,
        services.feedback.repository,
        metrics,
        settings.feedback_cache_seconds,
        services.feedback.users,
        settings.rendered_cache_bytes,
        settings.visitor_process,
    )
    # One reference swap: new requests see the new bundle. What it replaces may be newer than
    # `services` when reloads overlap; that one's writes in flight reach the new feedback, and
    # its visitor process stops once the batch it is answering is answered.
    replaced: Services = request.app.state.services
    replaced.feedback.successor = fresh.feedback
    fresh.start()
    request.app.state.services = fresh
    await replaced.close()
    freeze_heap()
    metrics.serving(bundle.version, bundle.manifest["dataset"]["name"])
    log.info("reloaded bundle %s (was %s)", bundle.version, previous)
    return {"previous": previous, "version": bundle.version, "dataset": bundle.manifest["dataset"]["name"]}
