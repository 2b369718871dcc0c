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


# -- storage ---------------------------------------------------------------------------------------
# The registry and the key store say what went wrong in their own terms; target/api/responses.py is
# the one place that turns these into HTTP answers.


class StorageError(TargetError):
    """A change the registry or key store refuses; ``description`` is safe to show a client."""

    description: str = ""

    def details(self) -> dict[str, object]:
        """Members an answer may carry beside the description (never a secret)."""
        return {}


class InvalidRegistrationError(StorageError):
    """A registration body that is not ``{"devices": [...]}`` of an acceptable count."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class InvalidDeviceError(StorageError):
    """One registration entry is not acceptable; ``index`` names it and ``reason`` says why."""

    def __init__(self, index: int, reason: str) -> None:
        self.index, self.reason = index, reason
        self.description = f"devices[{index}]: {reason}"
        super().__init__(self.description)

    def details(self) -> dict[str, object]:
        return {"index": self.index}


class DuplicateDeviceError(StorageError):
    """An id repeats an earlier entry (``first_index``) or one already registered (None)."""

    def __init__(self, index: int, device_id: str, first_index: int | None = None) -> None:
        self.index, self.device_id, self.first_index = index, device_id, first_index
        where = "already registered" if first_index is None else f"repeats devices[{first_index}]"
        self.description = f"devices[{index}]: id {where}"
        super().__init__(self.description)

    def details(self) -> dict[str, object]:
        return {"index": self.index, "id": self.device_id}


class KeyPinnedError(StorageError):
    """The signing key comes from ``--signing-key`` and cannot be rotated."""

    description = "the signing key is pinned by --signing-key"

    def __init__(self) -> None:
        super().__init__(self.description)


# -- MQTT ------------------------------------------------------------------------------------------


class ConnectRefused(TargetError):
    """An MQTT CONNECT refused: ``connack`` is the MQTT 3.1.1 return code, ``reason`` the metric
    label (fixed text of ours, never a piece of the CONNECT)."""

    def __init__(self, connack: int, reason: str) -> None:
        super().__init__(f"CONNECT refused ({reason}), CONNACK {connack}")
        self.connack = connack
        self.reason = reason


class PacketTooLarge(TargetError):
    """An MQTT client announced a packet field or payload over the listener's limit."""
