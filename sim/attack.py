"""``fleetbench attack``: the bad-token corpus against a target, one verdict per case.

The attack uses only what an outside attacker has. It registers three devices of its own through
the admin API (``attack-*``: one to forge from, one whose path it trespasses on, one it revokes),
takes genuine tokens from the token endpoint, reads the public keys the target publishes, and
forges from those (:mod:`sim.corpus`). Traffic goes to the target URL and to one loopback listener
the attack opens itself, which a ``jku``/``x5u`` case names and a careful target never calls.

Verdicts. A case is ``refused`` when the target refuses it with the expected status and class;
``mismatch`` when it refuses it otherwise (a warning: the token was still refused, but the answer
is not the one RFC 6750/6749 and docs/target-api.md give; ``--strict`` makes it a failure);
``accepted`` when a forged token or credential is honoured; ``server_error`` on a 5xx (client
input must never cause one); ``transport_error`` with no HTTP answer (nothing proves a refusal);
``fetched`` when the target called the ``jku``/``x5u`` listener. Every verdict other than
``refused`` and ``mismatch`` fails the run (exit 1), as do a weak HMAC secret and a target that no
longer serves a valid device after the corpus.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, get_args

import jwt
import requests
from cryptography.hazmat.primitives import serialization

from sim.corpus import (
    CASES,
    TOKEN_CASES,
    Case,
    ForgeContext,
    TokenCase,
    TokenContext,
    common_secrets,
    find_common_secret,
    stranger_certificate,
    stranger_jwks,
)
from sim.embedded import EmbeddedTarget, TargetStartError
from sim.errors import ConfigError, TargetError
from sim.fleet import Device, make_fleet
from sim.http import TargetClient
from sim.outcomes import refusal_reason
from sim.provision import register_fleet
from sim.report import write_attack_report
from target.jose import ALG_NAMES as TOKEN_ALGS
from target.jose import client_credentials_form

__all__ = [
    "ATTACK_SCHEMA",
    "DEFAULT_ALGS",
    "AttackReport",
    "CaseResult",
    "add_attack_parser",
    "attack_command",
    "attack_target",
    "run_attack",
]

ATTACK_SCHEMA = "fleetbench.attack/1"
DEFAULT_ALGS = ("HS256", "ES256", "EdDSA")
DEFAULT_ISSUER = "urn:fleetbench:target"
REQUEST_TIMEOUT_S = 10.0
EXIT_FAILED = 1
PATHS = {
    "config": ("GET", "/devices/{id}/config"),
    "telemetry": ("POST", "/devices/{id}/telemetry"),
    "data": ("GET", "/api/data"),
}

Verdict = Literal[
    "refused",
    "mismatch",
    "skipped",
    "accepted",
    "server_error",
    "transport_error",
    "fetched",
    "weak_secret",
]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
PASSING: frozenset[Verdict] = frozenset({"refused", "mismatch", "skipped"})


@dataclass(frozen=True)
class CaseResult:
    """One case's verdict: what was expected, what came back."""

    name: str
    family: str
    description: str
    expected: str
    got: str
    verdict: Verdict
    status: int = 0
    reason: str = ""


@dataclass
class AttackReport:
    """The corpus against one target (one algorithm)."""

    target: str
    embedded: bool
    token_alg: str
    results: list[CaseResult] = field(default_factory=list)
    still_serving: bool = False
    listener_requests: int = 0
    elapsed_s: float = 0.0

    def counts(self) -> dict[str, int]:
        counted = Counter(result.verdict for result in self.results)
        return {verdict: counted[verdict] for verdict in VERDICTS}

    def failures(self, strict: bool = False) -> list[str]:
        allowed = {"refused", "skipped"} if strict else PASSING
        failed = [
            f"{r.name}: {r.verdict} ({r.got})" for r in self.results if r.verdict not in allowed
        ]
        if self.listener_requests:
            failed.append(f"the target fetched the jku/x5u listener {self.listener_requests} times")
        if not self.still_serving:
            failed.append("the target no longer serves a valid device after the corpus")
        return failed

    def to_json(self, strict: bool = False) -> dict[str, Any]:
        return {
            "target": self.target,
            "embedded": self.embedded,
            "token_alg": self.token_alg,
            "passed": not self.failures(strict),
            "failures": self.failures(strict),
            "counts": {"cases": len(self.results), **self.counts()},
            "still_serving": self.still_serving,
            "listener_requests": self.listener_requests,
            "elapsed_s": round(self.elapsed_s, 3),
            "cases": [asdict(result) for result in self.results],
        }


# -- the loopback listener a jku/x5u case points at ----------------------------------------------


class _Listener(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, alg: str) -> None:
        super().__init__(("127.0.0.1", 0), _ListenerHandler)
        self.requests: list[str] = []
        self.lock = threading.Lock()
        # What a hostile key URL serves: the attacker's keys, so a target that follows the URL
        # would also accept the forgery (and the fetch itself is what we report).
        cert = stranger_certificate(alg).public_bytes(serialization.Encoding.PEM)
        self.bodies = {"/jwks.json": json.dumps(stranger_jwks(alg)).encode(), "/cert.pem": cert}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


class _ListenerHandler(BaseHTTPRequestHandler):
    server: _Listener

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests.append(self.path)
        body = self.server.bodies.get(self.path.split("?")[0], b"")
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _listening(alg: str) -> Iterator[_Listener]:
    listener = _Listener(alg)
    thread = threading.Thread(target=listener.serve_forever, name="attack-listener", daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        listener.shutdown()
        listener.server_close()
        thread.join(timeout=5)


# -- judging -------------------------------------------------------------------------------------


def _judge(
    status: int, reason: str, expected_status: int, expected: frozenset[str], token_endpoint: bool
) -> Verdict:
    if status == 0:
        return "transport_error"
    if status >= 500:
        return "server_error"
    if status < 400 or (token_endpoint and status == 200):
        return "accepted"
    return "refused" if status == expected_status and reason in expected else "mismatch"


def _expected(status: int, reasons: frozenset[str]) -> str:
    return f"{status} {'|'.join(sorted(reasons))}"


def _oauth_error(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"http_{response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else f"http_{response.status_code}"


class _Session:
    """Every request of an attack, to the one target URL, each with a timeout."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def send(self, method: str, path: str, **kwargs: Any) -> tuple[int, requests.Response | None]:
        try:
            response = self._session.request(
                method, self.url + path, timeout=REQUEST_TIMEOUT_S, **kwargs
            )
        except requests.RequestException:
            return 0, None
        return response.status_code, response

    def resource(
        self, endpoint: str, device_id: str, authorization: str | None
    ) -> tuple[int, requests.Response | None]:
        method, path = PATHS[endpoint]
        headers = {} if authorization is None else {"Authorization": authorization}
        body = {"seq": 0, "ts": time.time(), "values": {"temp_c": 21.5}}
        extra: dict[str, Any] = {"json": body} if method == "POST" else {}
        return self.send(method, path.format(id=device_id), headers=headers, **extra)

    def token(
        self, form: dict[str, str], basic: tuple[str, str] | None = None
    ) -> tuple[int, requests.Response | None]:
        return self.send("POST", "/auth/token", data=form, auth=basic)


def _run_case(session: _Session, case: Case, ctx: ForgeContext, listener: _Listener) -> CaseResult:
    expected = _expected(case.expected_status, case.expected_reasons)
    try:
        forged = case.forge(ctx)
    except (ValueError, KeyError, TypeError, StopIteration) as e:
        # The target's tokens lack what this forgery alters (a foreign target's token shape).
        got = f"not forged: {type(e).__name__}"
        return CaseResult(case.name, case.family, case.description, expected, got, "skipped")
    before = listener.count()
    status, response = session.resource(
        forged.endpoint or "config", forged.device_id, forged.authorization
    )
    reason = (
        refusal_reason(status, response.headers.get("www-authenticate"))
        if response is not None
        else "none"
    )
    verdict = _judge(status, reason, case.expected_status, case.expected_reasons, False)
    got = f"{status} {reason}" if status else "no HTTP answer"
    if listener.count() > before:
        verdict, got = "fetched", f"{got}, after fetching the key URL"
    return CaseResult(
        case.name, case.family, case.description, expected, got, verdict, status, reason
    )


def _run_token_case(session: _Session, case: TokenCase, ctx: TokenContext) -> CaseResult:
    forged = case.forge(ctx)
    expected = _expected(case.expected_status, case.expected_errors)

    def result(got: str, verdict: Verdict, status: int = 0, reason: str = "") -> CaseResult:
        return CaseResult(
            case.name, case.family, case.description, expected, got, verdict, status, reason
        )

    if forged.replay:
        first, _ = session.token(forged.form, forged.basic)
        if first != 200:  # the genuine first use was refused: the replay proves nothing
            return result(f"first use answered {first}, not 200", "mismatch", first)
    status, response = session.token(forged.form, forged.basic)
    if response is None:
        return result("no HTTP answer", "transport_error")
    error = _oauth_error(response)
    verdict = _judge(status, error, case.expected_status, case.expected_errors, True)
    return result(f"{status} {error}", verdict, status, error)


def _secret_strength(token: str, alg: str) -> CaseResult:
    tried = len(common_secrets())
    index = find_common_secret(token)
    got = (
        f"not signed by any of {tried} common secrets"
        if index is None
        else f"signed with common secret #{index} of sim/common_secrets.txt"
    )
    return CaseResult(
        "weak_hmac_secret",
        "secret_strength",
        f"{alg} token checked offline against {tried} common secrets",
        "no common secret",
        got,
        "refused" if index is None else "weak_secret",
    )


# -- one target ----------------------------------------------------------------------------------


def _token(session: _Session, device: Device, scope: str | None = None) -> str:
    form = client_credentials_form(device.id, device.secret)
    if scope is not None:
        form["scope"] = scope
    status, response = session.token(form)
    if response is None or status != 200:
        raise TargetError(f"the token endpoint refused a registered attack device ({status})")
    token = response.json().get("access_token")
    if not isinstance(token, str) or token.count(".") != 2:
        raise TargetError("the token endpoint did not answer an access_token JWS")
    return token


def _issuer(client: TargetClient) -> str:
    response = client.request("GET", "/.well-known/oauth-authorization-server")
    try:
        issuer = response.json().get("issuer") if response.status_code == 200 else None
    except ValueError:
        issuer = None
    return issuer if isinstance(issuer, str) else DEFAULT_ISSUER


def _public_key(client: TargetClient, token: str, device: Device) -> Any:
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


def _still_serving(session: _Session, token: str, device: Device, other: Device) -> bool:
    """A valid device's token still works, and another device still gets a working token."""
    status, _ = session.resource("config", device.id, f"Bearer {token}")
    if status != 200:
        return False
    try:
        fresh = _token(session, other)
    except TargetError:
        return False
    return session.resource("config", other.id, f"Bearer {fresh}")[0] == 200


def attack_target(
    url: str,
    admin_key: str,
    *,
    embedded: bool = False,
    on_result: Callable[[CaseResult], None] = lambda result: None,
) -> AttackReport:
    """Every corpus case against the target at ``url``; the attack devices are deleted after."""
    started = time.monotonic()
    client = TargetClient(url, admin_key)
    session = _Session(url)
    fleet = make_fleet(3, "ES256", prefix="attack")
    device, other, revoked = fleet.devices
    try:
        client.check_alive()
        register_fleet(client, fleet)
        token = _token(session, device)
        alg = str(jwt.get_unverified_header(token).get("alg"))
        report = AttackReport(url, embedded, alg)
        scoped = _token(session, device, scope="config:read")
        revoked_token = _token(session, revoked)
        response = client.request("POST", f"/admin/devices/{revoked.id}/revoke", admin=True)
        if response.status_code != 200:
            raise TargetError(f"revoking an attack device answered {response.status_code}")
        public_key = _public_key(client, token, device)
        issuer = _issuer(client)
        with _listening(alg) as listener:
            ctx = ForgeContext(
                token, alg, device.id, other.id, public_key=public_key,
                listener_url=listener.url, revoked_token=revoked_token,
                revoked_device_id=revoked.id, scoped_token=scoped,
            )  # fmt: skip
            for case in CASES:
                report.results.append(_run_case(session, case, ctx, listener))
                on_result(report.results[-1])
            token_ctx = TokenContext(issuer, device, other, revoked, token)
            for token_case in TOKEN_CASES:
                report.results.append(_run_token_case(session, token_case, token_ctx))
                on_result(report.results[-1])
            if alg.startswith("HS"):
                report.results.append(_secret_strength(token, alg))
                on_result(report.results[-1])
            time.sleep(0.2)  # a fetch the target made in the background still counts
            report.listener_requests = listener.count()
        report.still_serving = _still_serving(session, token, device, other)
    finally:
        for attacker in fleet.devices:
            with suppress(TargetError):
                client.request("DELETE", f"/admin/devices/{attacker.id}", admin=True)
        session.close()
        client.close()
    report.elapsed_s = time.monotonic() - started
    return report


@dataclass
class AttackConfig:
    target: str | None = None
    admin_key: str | None = field(default=None, repr=False)
    algs: tuple[str, ...] = DEFAULT_ALGS
    strict: bool = False
    on_result: Callable[[CaseResult], None] = field(default=lambda result: None, repr=False)
    log: Callable[[str], None] = field(default=lambda message: None, repr=False)


def run_attack(config: AttackConfig) -> list[AttackReport]:
    """The corpus against ``config.target``, or against an embedded target per algorithm."""
    if config.target is not None:
        if not config.admin_key:
            raise ConfigError("--target needs --admin-key (or FLEETBENCH_ADMIN_KEY)")
        if not config.target.startswith(("http://", "https://")):
            raise ConfigError("--target must be an http:// or https:// URL")
        config.log(f"attacking {config.target}")
        return [attack_target(config.target, config.admin_key, on_result=config.on_result)]
    reports = []
    for alg in config.algs:
        config.log(f"starting the embedded {alg} target")
        try:
            with EmbeddedTarget(alg) as target:
                reports.append(
                    attack_target(
                        target.url, target.admin_key, embedded=True, on_result=config.on_result
                    )
                )
        except TargetStartError as e:
            raise TargetError(str(e)) from e
    return reports


def attack_json(reports: list[AttackReport], strict: bool) -> dict[str, Any]:
    return {
        "schema": ATTACK_SCHEMA,
        "created_at": time.time(),
        "strict": strict,
        "passed": all(not report.failures(strict) for report in reports),
        "runs": [report.to_json(strict) for report in reports],
    }


# -- the command ---------------------------------------------------------------------------------

_MARKS: dict[str, str] = {"refused": "ok  ", "mismatch": "WARN", "skipped": "skip"}


def verdict_line(result: CaseResult) -> str:
    mark = _MARKS.get(result.verdict, "FAIL")
    return (
        f"{mark} {result.name:<28} expected {result.expected:<28} got {result.got}"
        f"{'' if result.verdict in _MARKS else f'  [{result.verdict}]'}"
    )


def summary_line(report: AttackReport, strict: bool) -> str:
    counts = report.counts()
    refused = counts["refused"] + counts["mismatch"]
    other = len(report.results) - refused - counts["skipped"] - counts["accepted"]
    skipped = f", {counts['skipped']} skipped" if counts["skipped"] else ""
    return (
        f"{'FAIL' if report.failures(strict) else 'PASS'} {report.token_alg} {report.target}: "
        f"{len(report.results)} cases, {refused} refused ({counts['mismatch']} with another "
        f"answer than expected){skipped}, {counts['accepted']} accepted, {other} other "
        f"failures; key URL fetches {report.listener_requests}; still serving valid devices: "
        f"{'yes' if report.still_serving else 'NO'} ({report.elapsed_s:.1f} s)"
    )


def add_attack_parser(commands: Any) -> None:
    p = commands.add_parser(
        "attack", help="the bad-token corpus against a target, one verdict each"
    )
    p.add_argument("--target", metavar="URL", help="a running target (default: start our own)")
    p.add_argument("--admin-key", help="the target's admin key (prefer FLEETBENCH_ADMIN_KEY)")
    p.add_argument(
        "--algs", help=f"embedded target's algorithms (default {','.join(DEFAULT_ALGS)})"
    )
    p.add_argument("--json", action="store_true", help="print attack.json to stdout")
    p.add_argument("--strict", action="store_true", help="a refusal with another answer fails too")
    p.add_argument("--results", type=Path, help="results folder (default results/attack-<time>)")
    p.add_argument("--quiet", action="store_true", help="no verdict lines, only the summary")


def attack_command(args: argparse.Namespace, console: Any) -> int:
    """``fleetbench attack``: 0 every case refused, 1 any accepted (or another failure)."""
    admin_key = args.admin_key or os.environ.get("FLEETBENCH_ADMIN_KEY")
    if args.target is not None and args.algs is not None:
        raise ConfigError("--algs picks the embedded target's algorithms; drop it with --target")
    algs = DEFAULT_ALGS
    if args.algs is not None:
        algs = tuple(a.strip() for a in args.algs.split(",") if a.strip())
        unknown = [alg for alg in algs if alg not in TOKEN_ALGS]
        if unknown or not algs:
            raise ConfigError(f"--algs: unknown algorithm {','.join(unknown) or '(none)'}")
    text = not args.json

    def show(result: CaseResult) -> None:
        if text and (not args.quiet or result.verdict != "refused"):
            print(verdict_line(result), flush=True)

    def log(message: str) -> None:
        if text and not args.quiet:
            print(f"fleetbench: {message}", flush=True)

    config = AttackConfig(args.target, admin_key, algs, args.strict, show, log)
    reports = run_attack(config)
    body = attack_json(reports, args.strict)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = args.results or Path("results") / f"attack-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "attack.json").write_text(json.dumps(body, indent=2) + "\n")
    write_attack_report(body, folder / "report.html")
    if args.json:
        json.dump(body, sys.stdout, indent=2)
        print()
    else:
        for report in reports:
            print(summary_line(report, args.strict))
        print(f"fleetbench: attack.json and report.html in {folder}")
    return 0 if body["passed"] else EXIT_FAILED
