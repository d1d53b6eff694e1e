"""The update-only step on weights carved from glibc's heap against weights in mappings
of their own.

The same compiled step (``chain(sgd, X)`` on bench_step's ten ``(1000, 1000)`` kernels)
runs on two copies of the weights and gradients in one process: one allocated while
glibc's mmap threshold is at its 32 MB maximum, so that every 4 MB kernel comes from the
heap, as it usually does in a process that has been running a while (glibc raises the
threshold as large blocks are freed); and one allocated with the threshold at 64 KB, so
that every kernel is mapped on its own. Both are donated, so each step writes back into
the buffers it read. The rounds alternate the two placements. On the model-167 Xeon of
the results README the root-finding transforms ran up to twice as fast on mapped
buffers, with the same machine code and no page faults in either; memory-bound steps
such as plain SGD moved little. glibc only (Linux); writes
``benchmarks/results/placement_<backend>.json``.

    python benchmarks/bench_placement.py
    python benchmarks/bench_placement.py --only sgd,half_threshold --vector-width 512
"""

from __future__ import annotations

import argparse
import ctypes
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import (
    COMPILER_OPTIONS,
    add_vector_width_arg,
    apply_vector_width,
    describe,
    machine,
    write_results,
)
from bench_step import GROUP, LR, TRANSFORMS, median_time, update_step, update_weights

# The default: plain SGD and every elementwise transform of bench_step.
ELEMENTWISE = ["sgd", *(name for name in TRANSFORMS if name not in GROUP)]
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
# glibc's mmap threshold per placement: the largest it accepts, and a small one.
THRESHOLDS = {"heap": 32 << 20, "mapped": 64 << 10}


def _set_mmap_threshold(libc: ctypes.CDLL, nbytes: int) -> None:
    if libc.mallopt(_M_MMAP_THRESHOLD, nbytes) != 1:
        raise RuntimeError(f"mallopt(M_MMAP_THRESHOLD, {nbytes}) failed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=9, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default=None, help="comma-separated names (sgd = plain SGD)")
    ap.add_argument("--out", default=None)
    add_vector_width_arg(ap)
    args = ap.parse_args()
    tag = apply_vector_width(args)
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 (glibc has it; musl and macOS do not)
    except (OSError, AttributeError):
        print("bench_placement needs glibc's mallopt; nothing to measure here")
        sys.exit(0)
    names = args.only.split(",") if args.only else ELEMENTWISE
    unknown = [n for n in names if n != "sgd" and n not in TRANSFORMS]
    if unknown:
        raise SystemExit(f"unknown transform(s): {', '.join(unknown)}")
    host = machine()
    print(describe(host))

    # Both copies hold the same values; only where their buffers live differs.
    placements = {}
    for where, threshold in THRESHOLDS.items():
        _set_mmap_threshold(libc, threshold)
        placements[where] = update_weights()
    print(
        "update only, 10.0M parameters in 10 kernels, ms per step "
        "(weights on glibc's heap / in their own mappings)"
    )
    rows = []
    for name in names:
        tx = optax.sgd(LR) if name == "sgd" else optax.chain(optax.sgd(LR), TRANSFORMS[name]())
        step = jax.jit(
            update_step(tx), donate_argnums=(0, 1), compiler_options=COMPILER_OPTIONS or None
        )
        carry = {}
        for where, (params, grads) in placements.items():
            # Copies made under the placement's own threshold, consumed by the donation.
            _set_mmap_threshold(libc, THRESHOLDS[where])
            p = jax.tree.map(jnp.copy, params)
            carry[where] = [p, tx.init(p)]
            for _ in range(2):  # compile, warm up
                carry[where] = list(step(*carry[where], grads))
            jax.block_until_ready(carry[where])
        times = {where: [] for where in THRESHOLDS}
        for _ in range(args.rounds):
            for where in THRESHOLDS:
                grads = placements[where][1]
                t, carry[where] = median_time(step, carry[where], (grads,), args.repeats)
                times[where].append(t)
        heap, mapped = (1e3 * float(np.median(times[w])) for w in ("heap", "mapped"))
        ratio = float(np.median(np.array(times["heap"]) / np.array(times["mapped"])))
        rows.append({"transform": name, "heap_ms": heap, "mapped_ms": mapped, "ratio": ratio})
        print(f"  {name:22s} {heap:7.2f} ms  {mapped:7.2f} ms   heap / mapped {ratio:5.2f}")
        del carry
    result = {
        "benchmark": "update-only step, weights on the heap against in their own mappings",
        **host,
        "optax_version": optax.__version__,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "rows": rows,
    }
    write_results(result, f"placement_{host['backend']}{tag}", args.out)


if __name__ == "__main__":
    main()
