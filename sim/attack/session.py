"""The attack's HTTP side: every request to the one target URL, each with a timeout, and what it
learns from the target the way an outside attacker would (tokens, issuer, public keys)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import requests

from sim.errors import TargetUnusable
from sim.fleet.client import TargetClient
from sim.fleet.model import Device
from sim.shape.scenarios import ENDPOINT_PATHS, Endpoint
from sim.untrusted import Answer, checked_alg, fetch
from target.jose.vocabulary import client_credentials_form

__all__ = ["AttackSession", "issuer_of", "public_key_for", "token_alg", "token_claim"]

DEFAULT_ISSUER = "urn:fleetbench:target"
REQUEST_TIMEOUT_S = 10.0


class AttackSession:
    """Every request of an attack, to the one target URL, each with a timeout."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def send(self, method: str, path: str, **kwargs: Any) -> tuple[int, Answer | None]:
        """(status, answer); (0, None) when no whole HTTP answer came in time. No redirect is
        followed (a 3xx is the answer); a body past the cap is cut (the verdict reads status,
        headers and the body's start)."""
        try:
            answer = fetch(
                self._session, method, self.url + path, timeout_s=REQUEST_TIMEOUT_S,
                truncate=True, **kwargs,
            )  # fmt: skip
        except TargetUnusable:
            return 0, None
        return answer.status_code, answer

    def resource(
        self, endpoint: Endpoint, device_id: str, authorization: str | None
    ) -> tuple[int, Answer | None]:
        method, path = ENDPOINT_PATHS[endpoint]
        headers = {} if authorization is None else {"Authorization": authorization}
        body = {"seq": 0, "ts": time.time(), "values": {"temp_c": 21.5}}
        extra: dict[str, Any] = {"json": body} if method == "POST" else {}
        return self.send(method, path.format(id=device_id), headers=headers, **extra)

    def token(
        self, form: dict[str, str], basic: tuple[str, str] | None = None
    ) -> tuple[int, Answer | None]:
        return self.send("POST", "/auth/token", data=form, auth=basic)

    def access_token(self, device: Device, scope: str | None = None) -> str:
        """A genuine access token for one of the attack's registered devices."""
        form = client_credentials_form(device.id, device.secret)
        if scope is not None:
            form["scope"] = scope
        status, response = self.token(form)
        if response is None or status != 200:
            raise TargetUnusable(
                f"the token endpoint refused a registered attack device ({status})"
            )
        try:
            token = response.json().get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or token.count(".") != 2:
            raise TargetUnusable("the token endpoint did not answer an access_token JWS")
        return token


def token_alg(token: str) -> str:
    """The ``alg`` a token's header names; one that does not read as an algorithm name is the
    API's text, not an algorithm: the attack stops on it (one line, without the text)."""
    try:
        alg = checked_alg(jwt.get_unverified_header(token).get("alg"))
    except (jwt.PyJWTError, RecursionError):
        alg = None
    if alg is None:
        raise TargetUnusable("the API's token names no algorithm fleetbench can read in its alg")
    return alg


def token_claim(token: str, name: str) -> str:
    """A string claim of the API's token, read unverified ("" when absent or not a string)."""
    try:
        value = jwt.decode(token, options={"verify_signature": False}).get(name)
    except (jwt.PyJWTError, RecursionError):
        value = None
    return value if isinstance(value, str) else ""


def issuer_of(client: TargetClient) -> str:
    """The issuer the target publishes (RFC 8414), or ours."""
    response = client.request("GET", "/.well-known/oauth-authorization-server")
    try:
        issuer = response.json().get("issuer") if response.status_code == 200 else None
    except ValueError:
        issuer = None
    return issuer if isinstance(issuer, str) else DEFAULT_ISSUER


def public_key_for(client: TargetClient, token: str, device: Device) -> Any:
    """The target's verification key for ``token`` from its JWKS; for an HMAC target (no public
    keys), a public key the target holds for one of our devices."""
    kid = jwt.get_unverified_header(token).get("kid")
    response = client.request("GET", "/.well-known/jwks.json")
    try:
        keys = response.json().get("keys", []) if response.status_code == 200 else []
        for jwk in keys:
            if isinstance(jwk, dict) and jwk.get("kid") == kid:
                return jwt.PyJWK(jwk).key
    except (ValueError, AttributeError, jwt.PyJWTError):
        pass
    return device.private_key().public_key()
