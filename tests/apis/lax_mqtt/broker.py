"""A deliberately lax MQTT broker: plain amqtt that lets anyone in with any password (anonymous
allowed) and lets every session publish and subscribe on every topic.

What a broker left at its defaults does. Tests send ``fleetbench attack --transport mqtt`` at it:
the forged tokens and the topic-ACL cases are accepted, so the verdict must fail. Serve with
``python -m tests.apis.lax_mqtt.broker [CERTFILE KEYFILE]``: it prints ``listening PORT`` once
bound on 127.0.0.1 (with a certificate and its key: over TLS).
"""

from __future__ import annotations

import asyncio
import socket
import sys

from amqtt.broker import Broker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def main() -> None:
    port = _free_port()
    listener: dict[str, object] = {"type": "tcp", "bind": f"127.0.0.1:{port}"}
    if len(sys.argv) == 3:
        listener.update(ssl=True, certfile=sys.argv[1], keyfile=sys.argv[2])
    config = {
        "listeners": {"default": listener},
        # The flaw on purpose: anonymous in, no topic check.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    print(f"listening {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
