"""Run a service's app with uvicorn, configured from the environment.

PORT (default 8000), HOST (default 0.0.0.0), LOG_LEVEL (default info) and
RELOAD (1 restarts the server when a source file changes: the dev overlay sets it).
"""

from __future__ import annotations

import os

import uvicorn


def source_dirs() -> list[str]:
    """The workspace source folders on PYTHONPATH: the ones worth watching for reloads."""
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    return [path for path in paths if path and os.path.isdir(path)] or [os.getcwd()]


def serve(app: str) -> None:
    """Serve `app` ("package.module:attribute") until interrupted."""
    reload = os.environ.get("RELOAD", "0").lower() in {"1", "true", "yes"}
    uvicorn.run(
        app,
        host=os.environ.get("HOST", "0.0.0.0"),
        port=int(os.environ.get("PORT", "8000")),
        log_level=os.environ.get("LOG_LEVEL", "info"),
        reload=reload,
        reload_dirs=source_dirs() if reload else None,
    )
