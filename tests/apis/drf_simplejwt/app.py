"""A device API the way a Django REST Framework + SimpleJWT tutorial builds it, in one file:
``POST /api/register/`` (a ``RegisterView``; behind ``X-Api-Key`` when ``ADMIN_KEY`` is set),
``POST /api/token/`` (``TokenObtainPairView``: ``{"access", "refresh"}``),
``POST /api/token/refresh/`` (``TokenRefreshView``), ``GET /api/data/`` (``IsAuthenticated``).
SimpleJWT's own answers: 401 "Authentication credentials were not provided." without a token,
401 ``token_not_valid`` for every bad token (an expired one says "Token is expired").

``JWT_SECRET`` and ``JWT_TTL_S`` (default 900) from the environment; users live in a SQLite
file in a temporary folder. Passwords hash with MD5 so tests stay fast (``DRF_HASHER=pbkdf2``:
Django's default PBKDF2, a costly login). Serve with ``python -m tests.apis.drf_simplejwt.app
PORT`` (0: a free port; prints ``listening PORT``).
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import django
from django.conf import settings

_DB = Path(tempfile.mkdtemp(prefix="drf-api-")) / "db.sqlite3"
_HASHERS = {
    "md5": "django.contrib.auth.hashers.MD5PasswordHasher",
    "pbkdf2": "django.contrib.auth.hashers.PBKDF2PasswordHasher",
}
settings.configure(
    DEBUG=False,
    SECRET_KEY=secrets.token_hex(32),
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "rest_framework",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(_DB)}},
    PASSWORD_HASHERS=[_HASHERS[os.environ.get("DRF_HASHER", "md5")]],
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework_simplejwt.authentication.JWTAuthentication"
        ],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    },
    SIMPLE_JWT={
        "SIGNING_KEY": os.environ["JWT_SECRET"],
        "ALGORITHM": "HS256",
        "ACCESS_TOKEN_LIFETIME": timedelta(seconds=int(os.environ.get("JWT_TTL_S", "900"))),
        "REFRESH_TOKEN_LIFETIME": timedelta(days=1),
    },
    USE_TZ=True,
)
django.setup()

from django.contrib.auth.models import User  # noqa: E402  (after settings, as Django needs)
from django.core.management import call_command  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.permissions import AllowAny  # noqa: E402
from rest_framework.request import Request  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView  # noqa: E402

ADMIN_KEY = os.environ.get("ADMIN_KEY")


class RegisterView(APIView):
    authentication_classes: ClassVar[list[Any]] = []
    permission_classes: ClassVar[list[Any]] = [AllowAny]

    def post(self, request: Request) -> Response:
        given = request.headers.get("X-Api-Key", "")
        if ADMIN_KEY and not secrets.compare_digest(given, ADMIN_KEY):
            return Response({"detail": "admin key required"}, status=401)
        name, password = request.data.get("username"), request.data.get("password")
        if not name or not password:
            return Response({"detail": "username and password required"}, status=400)
        if User.objects.filter(username=name).exists():
            return Response({"detail": "exists"}, status=409)
        User.objects.create_user(username=str(name), password=str(password))
        return Response({"username": name}, status=201)


class DataView(APIView):
    def get(self, request: Request) -> Response:
        return Response({"user": request.user.get_username(), "temp_c": 21.5})


urlpatterns = [
    path("api/register/", RegisterView.as_view()),
    path("api/token/", TokenObtainPairView.as_view()),
    path("api/token/refresh/", TokenRefreshView.as_view()),
    path("api/data/", DataView.as_view()),
]

if __name__ == "__main__":
    from django.core.wsgi import get_wsgi_application
    from werkzeug.serving import make_server

    call_command("migrate", verbosity=0)
    server = make_server(
        "127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8000, get_wsgi_application(),
        threaded=True,
    )  # fmt: skip
    print(f"listening {server.server_port}", flush=True)
    server.serve_forever()
