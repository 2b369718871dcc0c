"""The MQTT face of the target: an amqtt broker whose CONNECT, topics and telemetry use the
same verifier, registry and store as the HTTP API (docs/target-api.md, "MQTT")."""
