"""The target's exception tree: one root, narrow subclasses carrying what a response needs."""

from __future__ import annotations

from typing import Literal

ReasonClass = Literal["malformed", "signature", "claims", "expired", "revoked"]


class TargetError(Exception):
    """Root of every error the target raises on purpose."""


class TokenError(TargetError):
    """A bearer token was refused; ``reason`` is the class named in ``error_description``."""

    reason: ReasonClass = "malformed"

    def __init__(self, detail: str) -> None:
        # ``detail`` is always a fixed text of ours, never a piece of the token.
        super().__init__(detail)
        self.detail = detail

    @property
    def description(self) -> str:
        return f"{self.reason}: {self.detail}"


class MalformedTokenError(TokenError):
    """The token is not a well-formed compact JWS of acceptable size."""

    reason = "malformed"


class SignatureError(TokenError):
    """The algorithm, key or signature is not acceptable."""

    reason = "signature"


class ClaimsError(TokenError):
    """The header type or a claim is missing or wrong."""

    reason = "claims"


class ExpiredTokenError(TokenError):
    """The token's ``exp`` has passed (beyond the leeway)."""

    reason = "expired"


class RevokedError(TokenError):
    """The token's device is revoked, deleted or unknown."""

    reason = "revoked"


class OAuthError(TargetError):
    """An RFC 6749 §5.2 token-endpoint error."""

    def __init__(self, error: str, description: str, status_code: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status_code = status_code


class RequestError(TargetError):
    """A client request that cannot be served: its status, error code and reason."""

    def __init__(self, status_code: int, error: str, description: str, **extra: object) -> None:
        super().__init__(description)
        self.status_code = status_code
        self.error = error
        self.description = description
        self.extra = extra


class DatabaseUnavailable(TargetError):
    """The database could not do what a request needed (locked, busy, I/O): a 503, retry later."""
