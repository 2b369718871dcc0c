"""A running service for a bench to measure with two clients in turn: the embedded target, or
the Django REST Framework + SimpleJWT app of ``tests/apis`` with costly (PBKDF2) logins; with one
registered device's bearer token for a client that sends a fixed request (wrk, wrk2)."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import requests

from sim.processes import running_on
from sim.run.embedded import EmbeddedTarget
from sim.sweep.capacity import EMBEDDED_PATH

__all__ = ["APIS", "RunningService", "ServiceError", "running_service"]

APIS = ("embedded", "drf-simplejwt")
START_LIMIT_S = 30.0


class ServiceError(RuntimeError):
    """The service did not start, or would not give the bench a token."""


@dataclass(frozen=True)
class RunningService:
    """Where it answers, how fleetbench speaks to it (``profile``; ``admin_key`` for ours),
    the data path, and one device's ``Authorization`` header for a fixed-request client."""

    url: str
    profile: str
    path: str
    header: tuple[str, str] = field(repr=False)
    admin_key: str | None = field(default=None, repr=False)


@contextlib.contextmanager
def running_service(api: str, alg: str, cpus: set[int] | None) -> Iterator[RunningService]:
    """``api`` (one of :data:`APIS`) signing with ``alg``, pinned to ``cpus``, stopped after."""
    if api == "embedded":
        with EmbeddedTarget(alg, cpus=cpus) as target:
            token = target.device_token("bench-fixed-client", secrets.token_urlsafe(32))
            yield RunningService(
                target.url, "fleetbench", EMBEDDED_PATH, ("Authorization", f"Bearer {token}"),
                target.admin_key,
            )  # fmt: skip
        return
    if api != "drf-simplejwt":
        raise ServiceError(f"--api {api!r}: one of {', '.join(APIS)}")
    if alg != "HS256":
        raise ServiceError("the drf-simplejwt app signs HS256 only: --algs HS256")
    with _drf_app(cpus) as url:
        yield RunningService(url, "drf-simplejwt", "/api/data/", _drf_header(url))


@contextlib.contextmanager
def _drf_app(cpus: set[int] | None) -> Iterator[str]:
    """The DRF app with Django's PBKDF2 hasher, on a free loopback port, on ``cpus``."""
    from tests.apis.serve import serve_listening

    env = {**os.environ, "DRF_HASHER": "pbkdf2", "JWT_SECRET": secrets.token_hex(32)}
    command = [sys.executable, "-m", "tests.apis.drf_simplejwt.app", "0"]
    with contextlib.ExitStack() as stack:
        try:
            with running_on(cpus):  # the app inherits the cores it starts on
                url = stack.enter_context(serve_listening(command, env, START_LIMIT_S))
        except AssertionError as e:  # the helper's bounded wait for its "listening" line
            raise ServiceError(f"the drf-simplejwt app did not start: {e}") from None
        yield url


def _drf_header(url: str) -> tuple[str, str]:
    """Register one user and log it in (one PBKDF2 check): its access token as a header."""
    user = {"username": "bench-fixed-client", "password": secrets.token_urlsafe(24)}
    registered = requests.post(f"{url}/api/register/", json=user, timeout=30)
    login = requests.post(f"{url}/api/token/", json=user, timeout=30)
    if registered.status_code != 201 or login.status_code != 200:
        raise ServiceError(
            f"the drf-simplejwt app answered {registered.status_code} to the registration"
            f" and {login.status_code} to the login"
        )
    token = login.json().get("access")
    if not isinstance(token, str):
        raise ServiceError("the drf-simplejwt app's login answer held no access token")
    return "Authorization", f"Bearer {token}"
