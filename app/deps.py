"""Typed dependencies handing out what the lifespan loaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.errors import ModelNotReady
from app.services.catalog import Catalog
from app.services.home import HomeConfig
from app.services.recommender import Recommender
from training.bundle import Bundle


@dataclass(frozen=True)
class Services:
    bundle: Bundle
    catalog: Catalog
    recommender: Recommender
    home: HomeConfig

    @classmethod
    def from_bundle(cls, bundle: Bundle, home: HomeConfig) -> Services:
        catalog = Catalog(bundle)
        return cls(bundle, catalog, Recommender(bundle, catalog), home)


def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise ModelNotReady("no model bundle is loaded")
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
