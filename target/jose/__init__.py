"""The JOSE layer: the standard vocabulary both halves speak, the algorithm registry, JWS."""
