"""A fleet: its devices and their file, the HTTP client to a target, admin registration."""
