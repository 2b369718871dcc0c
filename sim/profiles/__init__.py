"""Target profiles: how fleetbench talks to one API (registration, tokens, presentation,
endpoints, refusals), from one declarative TOML file. ``fleetbench`` is our own target's."""

from sim.profiles.load import ProfileError, load_profile
from sim.profiles.model import Profile

__all__ = ["Profile", "ProfileError", "load_profile"]
