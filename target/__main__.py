"""``python -m target``: run the reference device API under uvicorn."""

from __future__ import annotations

import os
import sys
import tempfile

import uvicorn

from target.settings import AdminKeyFileError, parse_settings, resolve_admin_key


def main(argv: list[str] | None = None) -> None:
    try:
        settings, _ = resolve_admin_key(parse_settings(argv))
    except (AdminKeyFileError, OSError) as e:
        # Our own words for the key file; an OSError names only the path and what failed.
        sys.exit(f"target: error: {e}")
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": settings.access_log,
        "server_header": False,
    }
    print(
        f"target: {settings.alg} tokens on http://{settings.host}:{settings.port}"
        f" (db {settings.db}, {settings.workers} worker(s))",
        file=sys.stderr,
    )
    if settings.workers == 1:
        from target.api.app import create_app

        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
        return
    # Workers are separate processes: they read the same settings from the environment and count
    # metrics in files that /metrics merges.
    os.environ.update(settings.to_env())
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="fleetbench-prom-"))
    uvicorn.run(
        "target.api.app:create_app_from_env",
        factory=True,
        workers=settings.workers,
        **common,  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    main()
