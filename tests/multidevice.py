"""Runs a script in a fresh process that sees 8 host (CPU) devices.

The device count is fixed when JAX starts, so multi-device tests cannot run in the
pytest process itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def run_on_8_host_devices(script: str, timeout: int = 300) -> Any:
    """Runs ``script``; returns the JSON it printed on a line starting with ``RESULT``."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])
