"""The orchestrator's plain HTTP calls to a target (admin API, metrics), with one-line errors."""

from __future__ import annotations

from typing import Any

import requests

from sim.errors import AdminKeyRejected, TargetUnreachable, TargetUnusable

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
        self, method: str, path: str, *, admin: bool = False, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if admin:
            if not self._admin_key:
                raise AdminKeyRejected(
                    "an admin key is needed (--admin-key or FLEETBENCH_ADMIN_KEY)"
                )
            headers["Authorization"] = f"Bearer {self._admin_key}"
        try:
            response = self._session.request(
                method, self.url + path, headers=headers, timeout=TIMEOUT_S, **kwargs
            )
        except requests.ConnectionError as e:
            raise TargetUnreachable(f"cannot reach the target at {self.url}") from e
        except requests.RequestException as e:
            raise TargetUnreachable(
                f"no answer from the target at {self.url} ({type(e).__name__})"
            ) from e
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

    def check_alive(self) -> None:
        """Fail with one line unless the target answers HTTP at all."""
        self.request("GET", "/healthz")
