"""The HTTP app every service builds on: /health for probes, / for a greeting."""

from __future__ import annotations

import os
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from shared.gpu import cuda_driver_loads


def create_app(service: str, message: str, routes: Sequence[BaseRoute] = ()) -> Starlette:
    """Build a Starlette app for `service` with a health route and a greeting."""

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "service": service})

    async def index(request: Request) -> JSONResponse:
        # MODEL_NAME: an example of a runtime setting, from the service's settings.env.
        model = os.environ.get("MODEL_NAME", "")
        return JSONResponse({"service": service, "message": message, "model": model})

    async def gpu(request: Request) -> JSONResponse:
        return JSONResponse({"service": service, "cuda_driver": cuda_driver_loads()})

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/", index),
            Route("/gpu", gpu),
            *routes,
        ]
    )
