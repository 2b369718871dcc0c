"""A device API the way FastAPI's "OAuth2 with Password (and hashing), Bearer with JWT tokens"
tutorial builds it: ``POST /token`` takes an OAuth2 password form (``OAuth2PasswordRequestForm``)
and answers ``{"access_token", "token_type": "bearer"}``, ``GET /users/me/`` reads the token
with ``OAuth2PasswordBearer`` and PyJWT. FastAPI's own answers: 401 "Not authenticated" without
a token, 401 "Could not validate credentials" for every bad or expired one (with
``WWW-Authenticate: Bearer``). ``POST /register`` (JSON, behind ``X-Api-Key`` when ``ADMIN_KEY``
is set) adds a user, as the tutorial's fake database would be filled.

``JWT_SECRET`` and ``JWT_TTL_S`` (default 900) from the environment. Serve with
``python -m tests.apis.fastapi_oauth2.app PORT`` (0: a free port; prints ``listening PORT``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import sys
import time
from typing import Annotated, Any

import jwt
import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, status
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import BaseModel

SECRET = os.environ["JWT_SECRET"]
TTL_S = int(os.environ.get("JWT_TTL_S", "900"))
ADMIN_KEY = os.environ.get("ADMIN_KEY")
USERS: dict[str, str] = {}  # username -> salted hash (the tutorial uses a password hasher)

app = FastAPI()
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")


class Registration(BaseModel):
    username: str
    password: str


def _hash(password: str, salt: str) -> str:
    return salt + hashlib.sha256((salt + password).encode()).hexdigest()


@app.post("/register", status_code=201)
def register(body: Registration, x_api_key: Annotated[str, Header()] = "") -> dict[str, str]:
    if ADMIN_KEY and not secrets.compare_digest(x_api_key, ADMIN_KEY):
        raise HTTPException(status_code=401, detail="admin key required")
    if body.username in USERS:
        raise HTTPException(status_code=409, detail="exists")
    USERS[body.username] = _hash(body.password, secrets.token_hex(8))
    return {"username": body.username}


@app.post("/token")
def login(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, str]:
    stored = USERS.get(form.username)
    if stored is None or not secrets.compare_digest(stored, _hash(form.password, stored[:16])):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Incorrect username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    now = time.time()
    claims = {"sub": form.username, "iat": int(now), "exp": int(now) + TTL_S}
    return {"access_token": jwt.encode(claims, SECRET, algorithm="HS256"), "token_type": "bearer"}


def current_user(token: Annotated[str, Depends(oauth2_scheme)]) -> str:
    refused = HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Could not validate credentials",
        headers={"WWW-Authenticate": "Bearer"},
    )
    try:
        claims: dict[str, Any] = jwt.decode(token, SECRET, algorithms=["HS256"])
    except jwt.InvalidTokenError:
        raise refused from None
    if claims.get("sub") not in USERS:
        raise refused
    return str(claims["sub"])


@app.get("/users/me/")
def me(user: Annotated[str, Depends(current_user)]) -> dict[str, str]:
    return {"username": user}


if __name__ == "__main__":
    sock = socket.socket()
    sock.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8000))
    print(f"listening {sock.getsockname()[1]}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
