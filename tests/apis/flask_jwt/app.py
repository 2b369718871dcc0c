"""A login API the way a flask-jwt-extended tutorial builds it: ``POST /register``,
``POST /login`` answering ``{"access_token": JWT, "refresh_token": JWT}``, ``POST /refresh``
taking ``{"refresh_token": JWT}`` (flask-jwt-extended's JSON token location) and answering a new
``access_token``, ``GET /protected`` with ``@jwt_required()``. flask-jwt-extended's own
answers: a missing header 401, an expired token 401 ("Token has expired"), a bad signature,
an unsigned (alg none) or a malformed token 422.

``POST /readings`` takes a telemetry reading (202), and ``GET /stats`` answers how many it
received, ``{"readings": {"received": n}}`` (behind ``X-Api-Key`` when ``ADMIN_KEY`` is set).

``GET /metrics`` (prometheus_client) exports ``api_verify_seconds``, a histogram of the time
``/protected`` spends verifying the token, with no labels: the figure a profile's
``[metrics] verify_time`` names.

``ADMIN_KEY`` (if set, ``/register`` wants it in ``X-Api-Key``), ``JWT_SECRET``, ``JWT_TTL_S``
and ``JWT_ALG`` (HS256 by default; ES256 signs with a key pair made at start)
from the environment. Serve with
``python -m tests.apis.flask_jwt.app PORT`` (0: a free port; prints ``listening PORT``).
"""

from __future__ import annotations

import os
import secrets
import sys
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt_identity,
    jwt_required,
    verify_jwt_in_request,
)
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from werkzeug.serving import make_server

app = Flask(__name__)
app.config["JWT_SECRET_KEY"] = os.environ["JWT_SECRET"]
app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(seconds=int(os.environ.get("JWT_TTL_S", "900")))
app.config["JWT_REFRESH_JSON_KEY"] = "refresh_token"
app.config["JWT_ALGORITHM"] = os.environ.get("JWT_ALG", "HS256")
if app.config["JWT_ALGORITHM"] == "ES256":
    _key = ec.generate_private_key(ec.SECP256R1())
    app.config["JWT_PRIVATE_KEY"] = _key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    app.config["JWT_PUBLIC_KEY"] = (
        _key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
REGISTRY = CollectorRegistry()
VERIFY_SECONDS = Histogram(
    "api_verify_seconds", "time spent verifying the access token", registry=REGISTRY
)
JWTManager(app)
USERS: dict[str, str] = {}
# ADMIN_KEY set: registration is an admin call guarded by an X-Api-Key header, as many device
# APIs guard it.
ADMIN_KEY = os.environ.get("ADMIN_KEY")
RECEIVED = {"readings": 0}
SEEN: set[str] = set()


@app.post("/register")
def register() -> ResponseReturnValue:
    if ADMIN_KEY and not secrets.compare_digest(request.headers.get("X-Api-Key", ""), ADMIN_KEY):
        return jsonify(msg="admin key required"), 401
    body = request.get_json(silent=True) or {}
    name, password = str(body.get("username", "")), str(body.get("password", ""))
    if not name or not password:
        return jsonify(msg="username and password required"), 400
    if name in USERS:
        return jsonify(msg="exists"), 409
    USERS[name] = password
    return jsonify(msg="created"), 201


@app.post("/login")
def login() -> ResponseReturnValue:
    body = request.get_json(silent=True) or {}
    name = str(body.get("username", ""))
    if name not in USERS or not secrets.compare_digest(USERS[name], str(body.get("password"))):
        return jsonify(msg="Bad username or password"), 401
    return jsonify(
        access_token=create_access_token(identity=name),
        refresh_token=create_refresh_token(identity=name),
    )


@app.post("/refresh")
@jwt_required(refresh=True, locations=["json"])  # type: ignore[untyped-decorator]
def refresh() -> ResponseReturnValue:
    return jsonify(access_token=create_access_token(identity=get_jwt_identity()))


@app.get("/protected")
def protected() -> ResponseReturnValue:
    # What @jwt_required() does, timed: a refusal raises into flask-jwt-extended's handlers.
    with VERIFY_SECONDS.time():
        verify_jwt_in_request()
    return jsonify(logged_in_as=get_jwt_identity())


@app.post("/readings")
@jwt_required()  # type: ignore[untyped-decorator]
def readings() -> ResponseReturnValue:
    RECEIVED["readings"] += 1
    return jsonify(accepted=True), 202


@app.get("/stats")
def stats() -> ResponseReturnValue:
    """The API's own count of readings received (an admin call, as ``/register``)."""
    if ADMIN_KEY and not secrets.compare_digest(request.headers.get("X-Api-Key", ""), ADMIN_KEY):
        return jsonify(msg="admin key required"), 401
    return jsonify(readings={"received": RECEIVED["readings"]})


@app.get("/debug/paths")
def paths() -> ResponseReturnValue:
    """Every path asked so far, for a test to see what a client called."""
    return jsonify(sorted(SEEN))


@app.before_request
def seen() -> None:
    SEEN.add(request.path)


@app.get("/metrics")
def metrics() -> ResponseReturnValue:
    return Response(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


@app.get("/healthz")
def healthz() -> ResponseReturnValue:
    return "ok"


if __name__ == "__main__":
    server = make_server(
        "127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 5000, app, threaded=True
    )
    print(f"listening {server.server_port}", flush=True)
    server.serve_forever()
