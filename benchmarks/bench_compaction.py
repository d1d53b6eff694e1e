"""Inference throughput of compacted versus original LeNets (batch 256, jitted).

Sparse training typically leaves ~90% of hidden units / filters dead; we impose such
a pattern (dead columns with nonzero biases, dead input pixels), compact with
``sparse_optax.compact`` and time both models. Writes
``benchmarks/results/compaction_<backend>.json``.

    python benchmarks/bench_compaction.py [--batch 256] [--iters 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import sparse_optax as so
from sparse_optax.models import LeNet5Caffe, LeNet300100


def _kill_units(layer, keep: int, rng: np.random.Generator) -> None:
    n = layer.kernel.shape[-1]
    dead = rng.choice(n, n - keep, replace=False)
    layer.kernel[...] = layer.kernel[...].at[..., dead].set(0.0)
    layer.bias[...] = jnp.asarray(rng.normal(size=n) * 0.1, jnp.float32)


def lenet300(rng: np.random.Generator):
    m = LeNet300100(rngs=nnx.Rngs(0))
    _kill_units(m.fc1, 30, rng)
    _kill_units(m.fc2, 10, rng)
    dead_pixels = rng.choice(784, 392, replace=False)  # MNIST borders are never lit
    m.fc1.kernel[...] = m.fc1.kernel[...].at[dead_pixels].set(0.0)
    return m, jax.random.normal(jax.random.key(0), (16, 784))


def lenet5(rng: np.random.Generator):
    m = LeNet5Caffe(rngs=nnx.Rngs(0))
    _kill_units(m.conv1, 4, rng)
    _kill_units(m.conv2, 5, rng)
    _kill_units(m.fc1, 50, rng)
    return m, jax.random.normal(jax.random.key(0), (16, 28, 28, 1))


def throughput(model, x: jax.Array, iters: int) -> float:
    graphdef, state = nnx.split(model)
    f = jax.jit(lambda s, v: nnx.merge(graphdef, s)(v))
    f(state, x).block_until_ready()
    best = float("inf")
    for _ in range(5):  # best of 5 repeats damps noise from other processes
        t = time.perf_counter()
        for _ in range(iters):
            y = f(state, x)
        y.block_until_ready()
        best = min(best, (time.perf_counter() - t) / iters)
    return x.shape[0] / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--iters", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for name, build in (("LeNet-300-100", lenet300), ("LeNet-5-Caffe", lenet5)):
        model, sample = build(rng)
        t0 = time.perf_counter()
        new, report = so.compact(model, sample)
        compact_s = time.perf_counter() - t0
        x = jax.random.normal(jax.random.key(1), (args.batch, *sample.shape[1:]))
        xn = x[..., report.kept_inputs]
        before = throughput(model, x, args.iters)
        after = throughput(new, xn, args.iters)
        rows.append(
            dict(
                model=name,
                params_before=report.params_before,
                params_after=report.params_after,
                mflops_before=report.flops_before / 1e6,
                mflops_after=report.flops_after / 1e6,
                flop_reduction=report.flops_before / report.flops_after,
                examples_per_s_before=before,
                examples_per_s_after=after,
                speedup=after / before,
                compact_seconds=compact_s,
                max_abs_error=report.max_abs_error,
            )
        )
        print(report, end="\n\n")
    head = f"{'model':<16}{'params':>18}{'MFLOPs/ex':>16}{'ex/s before':>14}{'ex/s after':>14}"
    head += f"{'speedup':>9}{'FLOPs x':>9}"
    print(head)
    for r in rows:
        print(
            f"{r['model']:<16}{r['params_before']:>9}->{r['params_after']:<7}"
            f"{r['mflops_before']:>7.3f}->{r['mflops_after']:<7.3f}"
            f"{r['examples_per_s_before']:>14.0f}{r['examples_per_s_after']:>14.0f}"
            f"{r['speedup']:>8.1f}x{r['flop_reduction']:>8.1f}x"
        )
    backend = jax.default_backend()
    out = {
        "backend": backend,
        "device": jax.devices()[0].device_kind,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.platform(),
        "cpu_count": os.cpu_count(),
        "jax_version": jax.__version__,
        "batch": args.batch,
        "results": rows,
    }
    path = Path(__file__).parent / "results" / f"compaction_{backend}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
