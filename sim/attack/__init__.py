"""The bad-token corpus against a target, one verdict per case (``fleetbench attack``).

:mod:`sim.attack.engine` runs it (through a foreign target profile:
:mod:`sim.attack.profiled`, with :mod:`sim.attack.signed` when the profile holds the signing
key), :mod:`sim.attack.cases` plays one case, :mod:`sim.attack.verdicts` says what the answer
means, :mod:`sim.attack.session` and :mod:`sim.attack.listener` are its two network ends;
:mod:`sim.corpus` holds the cases. Over MQTT (``--transport mqtt``) the cases are CONNECTs and
topic reaches (:mod:`sim.attack.mqtt_cases`, :mod:`sim.attack.topic_acl`, device-signed JWTs
in :mod:`sim.attack.device_jwt`), sent by :mod:`sim.attack.broker`, its third network end.
"""

from __future__ import annotations

from sim.attack.engine import (
    ATTACK_SCHEMA,
    DEFAULT_ALGS,
    AttackConfig,
    AttackReport,
    attack_json,
    attack_target,
    run_attack,
    write_attack_outputs,
)
from sim.attack.profiled import attack_profile
from sim.attack.verdicts import PASSING, VERDICTS, CaseResult, Verdict

__all__ = [
    "ATTACK_SCHEMA",
    "DEFAULT_ALGS",
    "PASSING",
    "VERDICTS",
    "AttackConfig",
    "AttackReport",
    "CaseResult",
    "Verdict",
    "attack_json",
    "attack_profile",
    "attack_target",
    "run_attack",
    "write_attack_outputs",
]
