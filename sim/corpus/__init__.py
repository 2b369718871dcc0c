"""The bad-token corpus: ways to present a credential that a careful target must refuse.

Every case is built from what an attacker really has: a genuine access token obtained through the
token endpoint, the device's own credentials, the target's public keys (``/.well-known/jwks.json``)
and keys of its own. It never uses the target's private key, so a case that breaks one rule of a
signed token (an ``exp`` in the past, a wrong ``aud``) breaks the signature too, and a careful
target refuses it for its signature; that is the answer expected.

Two kinds of case:

- :class:`Case`: a request to a protected endpoint with a forged ``Authorization`` value, judged
  by status and RFC 6750 refusal class (``malformed``, ``signature``, ``claims``, ``expired``,
  ``revoked``; ``missing`` for a challenge without an error code; ``insufficient_scope``).
  ``fleetbench attack`` sends all of them; the rejection scenario sends those that need nothing
  beyond a held token (:func:`cases_for`).
- :class:`TokenCase`: a forged request to the token endpoint, judged by status and the RFC 6749
  ``error`` code. Sent by ``fleetbench attack`` only.

``expected_reasons`` lists every class a careful verifier may give. A forgery broken twice (say,
a payload that is not a JSON object under the original signature) may be refused for either
fault, depending on what the verifier checks first; both are right answers.

Where each part lives: :mod:`~sim.corpus.model` (the types), :mod:`~sim.corpus.forging` (JWS
segments, signing, header and claim edits), :mod:`~sim.corpus.strangers` (the attacker's own keys),
:mod:`~sim.corpus.forgers` (one forger per trick), :mod:`~sim.corpus.bearer_cases` and
:mod:`~sim.corpus.token_cases` (the two catalogues), :mod:`~sim.corpus.cracking` (common secrets).
"""

from __future__ import annotations

from sim.corpus.bearer_cases import CASES, cases_for
from sim.corpus.cracking import (
    common_secret_index,
    common_secret_name,
    common_secrets,
    find_common_secret,
)
from sim.corpus.model import (
    Case,
    Endpoint,
    ForgeContext,
    Forged,
    Need,
    TokenCase,
    TokenContext,
    TokenForged,
)
from sim.corpus.strangers import stranger_certificate, stranger_jwks
from sim.corpus.token_cases import TOKEN_CASES

__all__ = [
    "CASES",
    "TOKEN_CASES",
    "Case",
    "Endpoint",
    "ForgeContext",
    "Forged",
    "Need",
    "TokenCase",
    "TokenContext",
    "TokenForged",
    "cases_for",
    "common_secret_index",
    "common_secret_name",
    "common_secrets",
    "find_common_secret",
    "stranger_certificate",
    "stranger_jwks",
]
