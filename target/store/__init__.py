"""What the target keeps in SQLite: the database, the device registry, the key store, telemetry."""
