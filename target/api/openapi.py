"""The OpenAPI 3.1 description of every route, kept beside the code it describes.

Every limit in it (id pattern, secret length, batch size, reading bounds, algorithms, grant types)
is the constant the handlers validate with, imported rather than retyped.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from target import __version__
from target.jose.algorithms import ASSERTION_ALGORITHMS
from target.jose.vocabulary import CLIENT_CREDENTIALS, JWT_BEARER
from target.reading import MAX_SEQ, MAX_VALUES
from target.store.registry import (
    DEVICE_ID,
    MAX_DEVICES_PER_REQUEST,
    MAX_SECRET_CHARS,
    MIN_SECRET_CHARS,
    REGISTRATION_MEMBERS,
)

__all__ = ["openapi_schema"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_BEARER_ERRORS = {
    "401": _error(
        "no token, or a bad, expired, revoked or malformed one (WWW-Authenticate says which)"
    ),
    "403": _error("valid token without the scope, or for another device"),
}
_ADMIN_ERRORS = {"401": _error("admin key missing or wrong")}
_ID = {"type": "string", "pattern": f"^{DEVICE_ID.pattern}$"}
_DEVICE_ID = {"name": "device_id", "in": "path", "required": True, "schema": _ID}
_REGISTRATION_MEMBERS: dict[str, Any] = {
    "id": _ID,
    "secret": {"type": "string", "minLength": MIN_SECRET_CHARS, "maxLength": MAX_SECRET_CHARS},
    "public_key": _ref("Jwk"),
    "alg": {"type": "string", "enum": list(ASSERTION_ALGORITHMS)},
    "scope": {"type": "string"},
}
_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "error_description"],
        "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
    },
    "Jwk": {"type": "object", "required": ["kty"], "properties": {"kty": {"type": "string"}}},
    "NewDevice": {
        "type": "object",
        "required": ["id"],
        "additionalProperties": False,
        # A member the registry accepts but this file does not describe fails here, at import.
        "properties": {member: _REGISTRATION_MEMBERS[member] for member in REGISTRATION_MEMBERS},
    },
    "Device": {
        "type": "object",
        "required": ["id", "active", "scope", "has_secret", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "active": {"type": "boolean"},
            "scope": {"type": "string"},
            "has_secret": {"type": "boolean"},
            "public_key": {"oneOf": [_ref("Jwk"), {"type": "null"}]},
            "alg": {"type": ["string", "null"]},
            "created_at": {"type": "number"},
            "revoked_at": {"type": ["number", "null"]},
        },
    },
    "TokenResponse": {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in", "scope"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string", "const": "Bearer"},
            "expires_in": {"type": "integer"},
            "scope": {"type": "string"},
        },
    },
    "Reading": {
        "type": "object",
        "required": ["seq", "ts"],
        "properties": {
            "seq": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
            "ts": {"type": "number"},
            "values": {"type": "object", "maxProperties": MAX_VALUES},
        },
    },
}


def _public_paths() -> dict[str, Any]:
    """Liveness, metrics, this document and discovery: no credentials."""
    return {
        "/healthz": {
            "get": {"summary": "Liveness", "responses": {"200": _json({"type": "object"}, "alive")}}
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "text exposition",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI")},
            }
        },
        "/.well-known/jwks.json": {
            "get": {
                "summary": "Public verification keys (empty for HMAC algorithms)",
                "responses": {"200": _json({"type": "object", "required": ["keys"]}, "JWK set")},
            }
        },
        "/.well-known/oauth-authorization-server": {
            "get": {
                "summary": "RFC 8414 server metadata",
                "responses": {"200": _json({"type": "object", "required": ["issuer"]}, "metadata")},
            }
        },
    }


def _token_paths() -> dict[str, Any]:
    """The OAuth 2.0 token endpoint and the grants it takes."""
    return {
        "/auth/token": {
            "post": {
                "summary": "OAuth 2.0 token endpoint (client_credentials, jwt-bearer)",
                "security": [{}, {"clientBasic": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "required": ["grant_type"],
                                "properties": {
                                    "grant_type": {
                                        "type": "string",
                                        "enum": [
                                            CLIENT_CREDENTIALS,
                                            JWT_BEARER,
                                        ],
                                    },
                                    "client_id": {"type": "string"},
                                    "client_secret": {"type": "string"},
                                    "assertion": {"type": "string"},
                                    "scope": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(_ref("TokenResponse"), "an access token"),
                    "400": _error(
                        "invalid_request, invalid_grant, invalid_scope, unsupported_grant_type"
                    ),
                    "401": _error("invalid_client"),
                    "413": _error("body too large"),
                },
            }
        },
    }


def _admin_paths() -> dict[str, Any]:
    """Registration, revocation, key rotation and accounting: the admin key."""
    admin: list[dict[str, list[str]]] = [{"adminKey": []}]
    return {
        "/admin/devices": {
            "post": {
                "summary": "Register devices, all or none",
                "security": admin,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["devices"],
                                "properties": {
                                    "devices": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": MAX_DEVICES_PER_REQUEST,
                                        "items": _ref("NewDevice"),
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json(
                        {
                            "type": "object",
                            "required": ["created"],
                            "properties": {"created": {"type": "integer"}},
                        },
                        "created",
                    ),
                    "400": _error("not valid JSON or not the expected shape"),
                    "409": _error("an id is already registered or repeats"),
                    "413": _error("body too large"),
                    "415": _error("not application/json"),
                    "422": _error("an entry is invalid (named by index)"),
                    **_ADMIN_ERRORS,
                },
            }
        },
        "/admin/devices/{device_id}": {
            "parameters": [_DEVICE_ID],
            "get": {
                "summary": "A device record (never its secret)",
                "security": admin,
                "responses": {
                    "200": _json(_ref("Device"), "the device"),
                    "404": _error("no such device"),
                    **_ADMIN_ERRORS,
                },
            },
            "delete": {
                "summary": "Delete a device; its tokens are refused from then on",
                "security": admin,
                "responses": {
                    "204": {"description": "deleted"},
                    "404": _error("no such device"),
                    **_ADMIN_ERRORS,
                },
            },
        },
        "/admin/devices/{device_id}/revoke": {
            "parameters": [_DEVICE_ID],
            "post": {
                "summary": "Revoke a device; its tokens are refused from then on",
                "security": admin,
                "responses": {
                    "200": _json(_ref("Device"), "the revoked device"),
                    "404": _error("no such device"),
                    **_ADMIN_ERRORS,
                },
            },
        },
        "/admin/keys/rotate": {
            "post": {
                "summary": "New signing key; old keys verify for the grace period",
                "security": admin,
                "responses": {
                    "200": _json(
                        {"type": "object", "required": ["kid", "alg", "previous_kid", "grace_s"]},
                        "rotated",
                    ),
                    "409": _error("the key is pinned by --signing-key"),
                    **_ADMIN_ERRORS,
                },
            }
        },
        "/admin/stats": {
            "get": {
                "summary": "Telemetry accounting per device and in total",
                "security": admin,
                "responses": {
                    "200": _json(
                        {"type": "object", "required": ["devices", "totals"]}, "accounting"
                    ),
                    **_ADMIN_ERRORS,
                },
            }
        },
    }


def _device_paths() -> dict[str, Any]:
    """What a device calls with its access token."""
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "/devices/{device_id}/telemetry": {
            "parameters": [_DEVICE_ID],
            "post": {
                "summary": "One telemetry reading (scope telemetry:write, sub == device_id)",
                "security": bearer,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Reading")}},
                },
                "responses": {
                    "202": _json({"type": "object", "required": ["seq"]}, "accepted"),
                    "400": _error("not valid JSON"),
                    "413": _error("body too large"),
                    "415": _error("not application/json"),
                    "422": _error("not a valid reading"),
                    **_BEARER_ERRORS,
                },
            },
        },
        "/devices/{device_id}/config": {
            "parameters": [_DEVICE_ID],
            "get": {
                "summary": "Device configuration (scope config:read, sub == device_id)",
                "security": bearer,
                "responses": {
                    "200": _json({"type": "object", "required": ["device_id"]}, "configuration"),
                    **_BEARER_ERRORS,
                },
            },
        },
        "/api/data": {
            "get": {
                "summary": "The seed's minimal protected endpoint",
                "security": bearer,
                "responses": {
                    "200": _json({"type": "object", "required": ["device_id"]}, "data"),
                    "401": _BEARER_ERRORS["401"],
                },
            }
        },
    }


@cache
def openapi_schema() -> dict[str, Any]:
    paths = {**_public_paths(), **_token_paths(), **_admin_paths(), **_device_paths()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "fleetbench reference device API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "adminKey": {"type": "http", "scheme": "bearer"},
                "clientBasic": {"type": "http", "scheme": "basic"},
            },
        },
    }
