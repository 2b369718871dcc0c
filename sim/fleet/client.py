"""The orchestrator's plain HTTP calls to a target (admin API, metrics), with one-line errors."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import requests

from sim.errors import AdminKeyRejected, ConfigError, TargetUnreachable, TargetUnusable
from sim.untrusted import Answer, fetch, same_origin

__all__ = ["TargetClient"]

TIMEOUT_S = 30.0


class TargetClient:
    """``requests`` against one target; the admin key goes only into the Authorization header."""

    def __init__(self, url: str, admin_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self._session = requests.Session()
        self._admin_key = admin_key

    def __repr__(self) -> str:
        return f"TargetClient({self.url!r})"

    def close(self) -> None:
        self._session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        admin: bool = False,
        timeout_s: float = TIMEOUT_S,
        **kwargs: Any,
    ) -> Answer:
        """One call, read bounded (:func:`sim.untrusted.fetch`: no redirect followed, at most
        ``BODY_BYTES`` within ``timeout_s`` in all)."""
        url = self.url + path
        if not path.startswith("/") or not same_origin(self.url, url):
            raise ConfigError(f"{method} {path.split('?')[0]} would leave the target {self.url}")
        headers = dict(kwargs.pop("headers", {}))
        if admin:
            if not self._admin_key:
                raise AdminKeyRejected(
                    "an admin key is needed (--admin-key or FLEETBENCH_ADMIN_KEY)"
                )
            headers["Authorization"] = f"Bearer {self._admin_key}"
        try:
            response = fetch(
                self._session, method, url, headers=headers, timeout_s=timeout_s, **kwargs
            )
        except TargetUnreachable as e:
            raise TargetUnreachable(f"cannot reach the target at {self.url}: {e}") from None
        if admin and response.status_code == 401:
            raise AdminKeyRejected(f"the target at {self.url} refused the admin key (401)")
        return response

    def json(self, method: str, path: str, *, admin: bool = False, **kwargs: Any) -> Any:
        response = self.request(method, path, admin=admin, **kwargs)
        if response.status_code >= 400:
            raise TargetUnusable(f"{method} {path} answered {response.status_code}")
        try:
            return response.json()
        except ValueError as e:
            raise TargetUnusable(f"{method} {path} did not answer JSON") from e

    def check_reachable(self) -> None:
        """Fail with one line unless the target takes a connection: no request is sent (a
        foreign API gets only the calls its profile names)."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname or "", port), timeout=TIMEOUT_S).close()
        except OSError as e:
            raise TargetUnreachable(f"cannot reach the target at {self.url}") from e

    def check_alive(self) -> None:
        """Fail with one line unless the target answers HTTP at all."""
        self.request("GET", "/healthz")
