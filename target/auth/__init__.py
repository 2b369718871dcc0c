"""Tokens in and out: the access-token issuer, the verifier, device-signed assertions."""
