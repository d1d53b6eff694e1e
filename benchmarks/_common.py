"""What the benchmark scripts share: the machine they ran on and XLA's CPU vector width.

Figures from different CPUs are not comparable (the root-finding operators are bound by
their arithmetic, so vector width and core generation move them), so every results file
records the processor model, its vector extensions and its cache sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import jax

# XLA compiler options for every jitted program, set from --vector-width.
COMPILER_OPTIONS: dict[str, int] = {}


def add_vector_width_arg(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--vector-width",
        type=int,
        default=None,
        help="XLA CPU's preferred vector width in bits (default: XLA's, 256)",
    )


def apply_vector_width(args: argparse.Namespace) -> str:
    """Sets COMPILER_OPTIONS from ``--vector-width``; returns the results-file tag."""
    if not args.vector_width:
        return ""
    COMPILER_OPTIONS["xla_cpu_prefer_vector_width"] = args.vector_width
    return f"_vw{args.vector_width}"


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = text.split("\n\n", 1)[0]
    fields = (line.split(":", 1) for line in first.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in fields}


def _caches() -> dict[str, str]:
    # Per-core L1d/L2 and the shared L3, as the kernel reports them (Linux only).
    out = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind != "Instruction":
            out[f"L{level}{'d' if kind == 'Data' else ''}"] = size
    return out


_MALLOC_ENV = ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def machine() -> dict:
    """The host and the accelerator, for the results files."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    device = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device": getattr(device, "device_kind", str(device)),
        "jax_version": jax.__version__,
        "machine": platform.platform(),
        "processor": info.get("model name") or platform.processor() or platform.machine(),
        # A virtual machine may report only "AMD EPYC"; family and model tell the core
        # generation apart (family 25: model 1 is Zen 3, model 17 is Zen 4).
        "cpu_family_model": [info.get("cpu family"), info.get("model")],
        "vector_extensions": sorted(f for f in flags if f in {"avx2", "avx512f", "fma"}),
        "caches": _caches(),
        "cpu_count": os.cpu_count(),
        "compiler_options": dict(COMPILER_OPTIONS),
        # Flags such as --xla_cpu_enable_concurrency_optimized_scheduler=false change the
        # step figures (see benchmarks/results/README.md); they only take effect from the
        # environment, so that is where they are recorded from.
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        # glibc's allocator settings decide whether XLA's large buffers are page-faulted
        # afresh at every call, which moves the allocating and step figures as much.
        "malloc_env": {k: os.environ[k] for k in _MALLOC_ENV if k in os.environ},
    }


def describe(m: dict) -> str:
    """One line for the top of a benchmark's output."""
    ext = ",".join(m["vector_extensions"]) or "-"
    caches = " ".join(f"{k} {v}" for k, v in m["caches"].items())
    return (
        f"backend={m['backend']} device={m['device']} jax={m['jax_version']}\n"
        f"cpu={m['processor']} (family/model {'/'.join(map(str, m['cpu_family_model']))})"
        f" x{m['cpu_count']} ({ext}; {caches})"
        f" compiler_options={m['compiler_options']}"
        + (f" XLA_FLAGS={m['xla_flags']!r}" if m["xla_flags"] else "")
        + "".join(f" {k}={v!r}" for k, v in m["malloc_env"].items())
    )


def write_results(result: dict, name: str, out: str | None) -> Path:
    """Writes ``result`` to ``out``, or to ``results/<name>.json`` beside the scripts."""
    path = Path(out) if out else Path(__file__).parent / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return path
