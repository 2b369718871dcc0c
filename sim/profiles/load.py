"""Load a profile by name (shipped) or path, substitute ``${VAR}``, validate; every complaint
is one line ``FILE:LINE: what is wrong`` and never carries a substituted value."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from sim.errors import SimError
from sim.profiles.model import PLACEHOLDER, Profile, placeholders
from sim.tomlfile import KeyPath, path_line

__all__ = [
    "BUILTIN",
    "ProfileError",
    "allowed_keys",
    "builtin_names",
    "holds_credential",
    "line_of",
    "load_profile",
]

BUILTIN = "builtin"  # sim/profiles/builtin/*.toml, package data
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_AT = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$")
_PATH_PART = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")


class ProfileError(SimError):
    """A profile that cannot be used: one line naming the file and line."""


def builtin_names() -> list[str]:
    folder = resources.files("sim.profiles") / BUILTIN
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def line_of(text: str, path: KeyPath) -> int:
    """The 1-based line that writes ``path``, or of its nearest written ancestor (an inline
    table's key); 1 if nothing matches."""
    for depth in range(len(path), 0, -1):
        line = path_line(text, path[:depth])
        if line:
            return line
    return 1


def _resolve(name_or_path: str) -> tuple[str, str]:
    """(label for messages, text)."""
    path = Path(name_or_path)
    shipped = resources.files("sim.profiles") / BUILTIN / f"{name_or_path}.toml"
    bare = path.suffix != ".toml" and "/" not in name_or_path
    if bare and shipped.is_file():
        # A shipped name still resolves when a folder here has that name; a file of that name
        # here is ambiguous.
        if path.is_file():
            raise ProfileError(
                f"profile {name_or_path!r} is ambiguous: a shipped profile and a file here;"
                f" give ./{name_or_path} for the file"
            )
        return f"{name_or_path} (built in)", shipped.read_text(encoding="utf-8")
    if not bare or path.exists():
        try:
            return str(path), path.read_text(encoding="utf-8")
        except OSError as e:
            raise ProfileError(f"{path}: cannot read the profile ({e.strerror})") from e
        except UnicodeDecodeError as e:
            raise ProfileError(f"{path}: not a UTF-8 text file") from e
    names = ", ".join(builtin_names())
    raise ProfileError(f"unknown profile {name_or_path!r}: use one of {names}, or a .toml file")


def allowed_keys(path: KeyPath) -> list[str]:
    """The keys the table at ``path`` (("token", "refresh"), ("endpoints", 0)) may hold."""
    kind: Any = Profile
    for part in path:
        fields = {f.name: f.type for f in msgspec.structs.fields(kind)}
        if isinstance(part, int):
            continue  # an [[array]]'s n-th table: the element type was taken with its name
        kind = fields.get(part)
        for _ in range(3):  # unwrap list[X] and X | None
            inner = [a for a in getattr(kind, "__args__", ()) if a is not type(None)]
            if inner and not isinstance(kind, type):
                kind = inner[0]
        if not (isinstance(kind, type) and issubclass(kind, msgspec.Struct)):
            return []
    return [
        f.encode_name
        for f in msgspec.structs.fields(kind)
        if f.name not in ("source", "reads")  # set by the loader, never written
    ]


def _path(at: str) -> KeyPath:
    return tuple(int(index) if index else key for key, index in _PATH_PART.findall(at))


def _strings(value: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))


def _at(data: Any, path: KeyPath) -> Any:
    for part in path:
        data = data[part]
    return data


def _substitute(value: Any, env: Mapping[str, str], fail: Any) -> Any:
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise fail(name)
            return env[name]

        return _VAR.sub(one, value)
    if isinstance(value, dict):
        return {key: _substitute(item, env, fail) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, env, fail) for item in value]
    return value


# Keys whose strings are templates (placeholders checked at load); the rest are plain values.
_TEMPLATES = ("provision", "token", "present", "endpoints", "devices", "rotate", "revoke", "mqtt")
_NOT_TEMPLATES = {"method", "via", "source", "alg", "token_field", "token_header", "ok"}
_NOT_TEMPLATES |= {"expires_in_field", "refresh_token_field", "header", "query", "name", "file"}
_NOT_TEMPLATES |= {"secret", "private_key_file", "pattern", "headers"}
_NOT_TEMPLATES |= {"host", "ca_file", "protocol", "token_in"}


# What each registration way reads; another key under it is a mistake, not a setting.
_PROVISION_KEYS = {"file": {"via", "file"}, "none": {"via"}, "admin": {"via"}}

# Where ${VAR} may stand: the fields that hold credentials (a key, a secret, a token call's body,
# the Authorization value). Anywhere else (paths, query, header names, method, names) a value
# from the environment would travel to the API or into results unasked (docs/security.md).
CREDENTIAL_FIELDS: tuple[KeyPath, ...] = (
    ("token", "secret"),
    ("token", "private_key_file"),
    ("present", "format"),
)
CREDENTIAL_BODIES: tuple[KeyPath, ...] = (
    ("token", "form"),
    ("token", "json"),
    ("token", "assertion_form"),
    ("token", "refresh", "form"),
    ("token", "refresh", "json"),
    ("provision", "form"),
    ("provision", "json"),
)


# Every path is appended to --target: it must start with "/", or it could name another host.
def _is_path_field(path: KeyPath) -> bool:
    return path in (("provision", "path"), ("token", "path"), ("token", "refresh", "path")) or (
        len(path) == 3 and path[0] == "endpoints" and path[2] == "path"
    )


def holds_credential(path: KeyPath) -> bool:
    """Whether the value at ``path`` may come from the environment: a header's value (never a
    minted token's JOSE field), a credential field, or inside a credential call's body."""
    if len(path) >= 2 and path[-2] == "headers":
        return True
    return path in CREDENTIAL_FIELDS or any(
        path[: len(body)] == body and len(path) > len(body) for body in CREDENTIAL_BODIES
    )


def _parse(text: str, label: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        found = re.search(r"\(at line (\d+), column \d+\)", str(e))
        line = found.group(1) if found else "1"
        raise ProfileError(f"{label}:{line}: not valid TOML ({str(e).split(' (at')[0]})") from e
    except RecursionError:  # tomllib recurses into nested arrays and tables
        raise ProfileError(f"{label}: not valid TOML (nested too deep)") from None


def load_profile(name_or_path: str, env: Mapping[str, str]) -> Profile:
    """The profile ``name_or_path`` with ``${VAR}`` taken from ``env``, validated."""
    label, text = _resolve(name_or_path)

    def error(path: KeyPath, message: str) -> ProfileError:
        return ProfileError(f"{label}:{line_of(text, path)}: {message}")

    data = _parse(text, label)
    for key in ("source", "reads"):
        if key in data:
            allowed = ", ".join(allowed_keys(()))
            raise error((key,), f"unknown key {key!r} (allowed here: {allowed})")
    try:
        msgspec.convert(data, Profile)  # the shape, before any value comes from the environment
    except msgspec.ValidationError as e:
        message, at = _AT.match(str(e)).groups()  # type: ignore[union-attr]
        path = _path(at or "")
        unknown = re.match(r"Object contains unknown field `(.+)`", message)
        if unknown:
            allowed = ", ".join(allowed_keys(path))
            raise error(
                (*path, unknown.group(1)),
                f"unknown key {unknown.group(1)!r} (allowed here: {allowed})",
            ) from None
        where = ".".join(str(p) for p in path) or "profile"
        raise error(path, f"{where}: {message[0].lower()}{message[1:]}") from None
    provision = data.get("provision", {})
    wanted = _PROVISION_KEYS.get(provision.get("via", "admin"), set(provision))
    unused = [key for key in provision if key not in wanted]  # in the order written
    if unused:
        raise error(
            ("provision", unused[0]),
            f"provision.{unused[0]} is not used with via = {provision.get('via', 'admin')!r}"
            " (the devices are not registered by a call)",
        )
    reads: list[str] = []
    substituted_templates: list[KeyPath] = []
    for path, value in _strings(data):
        names = _VAR.findall(value)
        if names and not holds_credential(path):
            where = ".".join(str(p) for p in path)
            raise error(
                path,
                f"${{{names[0]}}} in {where}: environment variables may stand only in fields "
                "that hold credentials (header values, token.secret, token.private_key_file, "
                "present.format, the token, refresh and provision calls' form or json)",
            )
        reads += [name for name in names if name not in reads]
        if names and path[0] in _TEMPLATES and not set(map(str, path)) & _NOT_TEMPLATES:
            substituted_templates.append(path)
        if _is_path_field(path) and not value.startswith("/"):
            raise error(
                path, f"{'.'.join(map(str, path))} must start with '/' (a path on --target)"
            )
        if path[0] not in _TEMPLATES or set(map(str, path)) & _NOT_TEMPLATES:
            continue
        for field in placeholders(_VAR.sub("", value)):  # ${VAR} is no placeholder
            if not PLACEHOLDER.match(field):
                raise error(path, f"unknown placeholder {{{field}}} in a template")

    def missing(name: str) -> ProfileError:
        needle = "${" + name + "}"
        line = next((n for n, t in enumerate(text.splitlines(), 1) if needle in t), 1)
        return ProfileError(f"{label}:{line}: environment variable {name} is not set")

    data = _substitute(data, env, missing)
    for path in substituted_templates:  # a value with {braces} would read as a placeholder
        value = _at(data, path)
        if any(not PLACEHOLDER.match(field) for field in placeholders(value)):
            raise error(path, "a value from the environment holds { or }: not in a template")
    try:
        profile = msgspec.convert(data, Profile)
    except msgspec.ValidationError as e:  # only a substituted value can fail here: never show it
        at = _AT.match(str(e)).group(2) or ""  # type: ignore[union-attr]
        raise error(_path(at), "a value from the environment does not fit this key") from None
    _check(profile, error)
    return msgspec.structs.replace(
        profile, source=label, reads=tuple(sorted(reads)), has_mqtt="mqtt" in data
    )


def _check(profile: Profile, error: Any) -> None:
    token = profile.token
    if token.source == "minted" and not (token.secret or token.private_key_file):
        raise error(("token", "source"), "minted tokens need token.secret or private_key_file")
    if token.source == "minted" and "exp" not in token.claims:
        raise error(("token", "claims"), 'minted claims need an exp, e.g. "{now + ttl}"')
    if token.source == "endpoint" and not (token.token_field or token.token_header):
        raise error(("token",), "say where the token is: token_field or token_header")
    if token.source == "minted" and token.headers:
        raise error(
            ("token", "headers"),
            "a minted token has no token call to send headers with:"
            " its extra JOSE header fields go in jose_header",
        )
    if token.refresh is not None and not token.refresh_token_field:
        raise error(("token", "refresh"), "token.refresh needs token.refresh_token_field")
    if not profile.endpoints:
        raise error(("endpoints",), "at least one [[endpoints]] table is needed")
    for index, endpoint in enumerate(profile.endpoints):
        if endpoint.weight < 1:
            raise error(("endpoints", index, "weight"), "weight must be 1 or more")
    names = profile.endpoint_names()
    if len(set(names)) != len(names):
        raise error(("endpoints",), "two [[endpoints]] have the same name")
    if profile.default_endpoint is not None and profile.default_endpoint not in names:
        raise error(
            ("default_endpoint",),
            f"default_endpoint {profile.default_endpoint!r} is not one of the endpoints"
            f" ({', '.join(names)})",
        )
    if profile.revoke is not None and not 0 <= profile.revoke.bound_s < 3600:
        raise error(
            ("revoke", "bound_s"), "revoke.bound_s must be 0 or more seconds (under an hour)"
        )
    provision = profile.provision
    if provision.via == "call" and not provision.path:
        raise error(("provision", "via"), "provision via call needs a path")
    if provision.via == "file" and not provision.file:
        raise error(("provision", "via"), "provision via file needs file = PATH")
    if profile.present.query is None and "{token}" not in profile.present.format:
        raise error(("present", "format"), "present.format must contain {token}")
    _check_mqtt(profile, error)
    for name in ("missing", "expired", "invalid", "forbidden"):
        refusal = getattr(profile.refusals, name)
        for key in ("pattern", "body"):
            regex = getattr(refusal, key, None) if refusal else None
            try:
                if regex is not None:
                    re.compile(regex)
            except re.error as e:
                raise error(("refusals", name, key), f"not a valid regex ({e.msg})") from None


# What each [mqtt] template may name, and what it must (the topics name their device).
_MQTT_TEMPLATES = {
    "username": (frozenset({"device_id"}), ""),
    "client_id": (frozenset({"device_id"}), ""),
    "telemetry_topic": (frozenset({"device_id"}), "device_id"),
    "acl_topic": (frozenset({"device_id", "other_device_id"}), "other_device_id"),
}
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$|^\[[0-9A-Fa-f:.]{2,45}\]$")


def _check_mqtt(profile: Profile, error: Any) -> None:
    mqtt = profile.mqtt
    if mqtt.host is not None and not _HOST.match(mqtt.host):
        raise error(("mqtt", "host"), "mqtt.host must be a host name or address, nothing more")
    if not 0 < mqtt.port < 65536:
        raise error(("mqtt", "port"), "mqtt.port must be 1 to 65535")
    if mqtt.ca_file is not None and not mqtt.tls:
        raise error(("mqtt", "ca_file"), "mqtt.ca_file needs tls = true")
    if mqtt.qos not in (0, 1):
        raise error(("mqtt", "qos"), "mqtt.qos must be 0 or 1")
    if not 0 < mqtt.connect_timeout_s <= 60:
        raise error(
            ("mqtt", "connect_timeout_s"), "mqtt.connect_timeout_s must be over 0, at most 60"
        )
    for key in ("bad_credentials", "not_authorised"):
        codes = getattr(mqtt, key)
        if codes is not None and (not codes or not all(0 < code < 256 for code in codes)):
            raise error(("mqtt", key), f"mqtt.{key} must list CONNACK codes from 1 to 255")
    for key, (allowed, needed) in _MQTT_TEMPLATES.items():
        value = getattr(mqtt, key)
        fields = placeholders(value)
        wrong = [field for field in fields if field not in allowed]
        if wrong:
            names = ", ".join(f"{{{name}}}" for name in sorted(allowed))
            raise error(("mqtt", key), f"mqtt.{key} may name only {names}, not {{{wrong[0]}}}")
        if needed and needed not in fields:
            raise error(("mqtt", key), f"mqtt.{key} must name {{{needed}}}")
        if key.endswith("topic") and (set(value) & set("+#\x00") or not value.strip("/")):
            raise error(("mqtt", key), f"mqtt.{key} must be a topic name without + or #")
