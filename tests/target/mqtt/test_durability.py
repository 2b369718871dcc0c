"""QoS 1 across ``kill -9``: nothing acknowledged is lost (acknowledged ⊆ stored)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sim.run.embedded import EmbeddedTarget
from tests.target.helpers import client_token, new_device, wait_until
from tests.target.mqtt.clients import ACCEPTED, Device

pytestmark = pytest.mark.slow

READINGS = 300
KILL_AFTER = 100


def _stored(db: str, device_id: str) -> set[int]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT seq FROM readings WHERE device_id = ?", (device_id,))
        return {seq for (seq,) in rows}


def test_acknowledged_readings_survive_kill_9_and_unacknowledged_ones_are_resent(
    tmp_path: Path,
) -> None:
    target = EmbeddedTarget("ES256", mqtt=True, db=str(tmp_path / "target.db")).start()
    try:
        registered = new_device(target)
        device = Device(
            target, registered.id, client_token(target, registered), clean_session=False
        )
        device.client.reconnect_delay_set(1, 1)
        lock = threading.Lock()
        seq_of: dict[int, int] = {}
        acked_mids: set[int] = set()

        def on_publish(client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
            with lock:
                acked_mids.add(mid)

        device.client.on_publish = on_publish
        assert device.connect(retry=True) == ACCEPTED
        acked_before_kill: set[int] = set()
        for seq in range(1, READINGS + 1):
            if seq == KILL_AFTER:
                assert wait_until(lambda: len(acked_mids) >= KILL_AFTER // 2, 10)
                with lock:
                    acked_before_kill = {seq_of[mid] for mid in acked_mids}
                assert target.pid is not None
                os.killpg(target.pid, signal.SIGKILL)  # mid-stream: readings in flight
                assert target.process is not None
                target.process.wait()
                target.start()  # same port, same database
            info = device.publish_reading(seq)
            with lock:
                seq_of[info.mid] = seq
            time.sleep(0.002)
        # paho resends what was not acknowledged when it reconnects (clean session 0).
        assert wait_until(lambda: len(acked_mids) == READINGS, 30), len(acked_mids)
        device.close()
        with lock:
            acknowledged = {seq_of[mid] for mid in acked_mids}
        stored = _stored(target.db, registered.id)
        assert acked_before_kill and acked_before_kill <= stored
        assert acknowledged <= stored
        assert acknowledged == set(range(1, READINGS + 1))
    finally:
        target.stop()
