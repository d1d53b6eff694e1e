"""Throughput of every prox operator against the memory-bandwidth limit.

For each operator of the catalog, on N elements (16M by default) of float32 and
bfloat16, this measures the jitted operator (after warm-up, median of several runs)
and reports GB/s counting the bytes read and written, and the ratio to a plain
``x * c`` over the same array measured in the same process, interleaved with it
(ref, op, ref in each round; median of the rounds' ratios). Two settings:

* default: each call allocates its output, as a plain jitted call does; on CPU the
  page faults of a fresh 64 MB output are part of both timings;
* in place (``--in-place``, on by default): the input is donated and overwritten, as
  in an optimizer step;
* out of place (``--out-of-place``, on by default): the output goes to a separate
  buffer that was already written once (a donated spare), so neither page faults nor
  the read-modify-write of the in-place setting are part of the timing; on CPU this is
  closest to the operator's arithmetic plus the traffic of reading one array and
  writing another.

A last column gives the arithmetic alone, in nanoseconds per element of a small array
that stays in cache: where it exceeds what the memory traffic of ``x * c`` costs per
element, the operator is compute-bound on that machine.

On an accelerator the default size is 256M elements (1 GiB of float32, far larger than
the caches) and each timing covers ``--calls`` back-to-back calls (default 8), so that
the asynchronous dispatch overlaps the kernels as in a training loop rather than adding
its host round trip to every call; the report adds the fraction of the device's
data-sheet peak bandwidth.

Peers are measured side by side where installed (jaxopt, PyProximal). Writes
``benchmarks/results/prox_<backend>.json``.

``--vector-width 512`` compiles every program, the reference included, with XLA's
``xla_cpu_prefer_vector_width`` option (XLA CPU emits 256-bit vectors by default, also
on CPUs with AVX-512); the results go to ``prox_<backend>_vw512.json``.

    python benchmarks/bench_prox.py            # full size (16M on CPU, 256M on GPU)
    python benchmarks/bench_prox.py --quick    # 1M elements, fewer repeats
    python benchmarks/bench_prox.py --vector-width 512   # 512-bit vectors on CPU
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from _common import (
    COMPILER_OPTIONS,
    add_vector_width_arg,
    apply_vector_width,
    describe,
    machine,
    write_results,
)

import sparse_optax as so

# Peak memory bandwidth (bytes/s) by device kind, from the vendors' data sheets.
PEAK_BANDWIDTH = {
    "H100 80GB HBM3": 3.35e12,
    "NVIDIA H100 80GB HBM3": 3.35e12,
    "NVIDIA H100 PCIe": 2.0e12,
    "NVIDIA H200": 4.8e12,
    "NVIDIA A100-SXM4-80GB": 2.039e12,
    "NVIDIA A100-SXM4-40GB": 1.555e12,
}

ELEMENTWISE: dict[str, Callable] = {
    "l1": lambda x: so.prox_l1(x, 0.1, 0.5),
    "l0": lambda x: so.prox_l0(x, 0.1, 0.5),
    "half": lambda x: so.prox_half(x, 0.1, 0.5),
    "two_thirds": lambda x: so.prox_two_thirds(x, 0.1, 0.5),
    "tl1": lambda x: so.prox_tl1(x, 0.1, 0.5, 1.0),
    "capped_l1": lambda x: so.prox_capped_l1(x, 0.1, 0.5, 5.0),
    "mcp": lambda x: so.prox_mcp(x, 0.1, 0.5, 3.0),
    "scad": lambda x: so.prox_scad(x, 0.1, 0.5, 3.7),
}
GROUP: dict[str, Callable] = {
    "group_lasso": lambda x: so.prox_group_lasso(x, 0.1, 0.5),
    "group_l0": lambda x: so.prox_group_l0(x, 0.1, 0.5),
    "exclusive": lambda x: so.prox_exclusive(x, 0.1, 0.05),
    "sparse_group_lasso": lambda x: so.prox_sparse_group_lasso(x, 0.1, 0.5, 0.5),
    "l1_exclusive": lambda x: so.prox_l1_exclusive(x, 0.1, 0.05, 0.5),
    "tl1_group": lambda x: so.prox_tl1_group(x, 0.1, 0.5, 1.0, 0.5),
}


def _jit(fn: Callable, **kwargs) -> Callable:
    return jax.jit(fn, compiler_options=COMPILER_OPTIONS or None, **kwargs)


# Where a timed call writes its output (see the module docstring).
ALLOCATE, IN_PLACE, OUT_OF_PLACE = "allocate", "in place", "out of place"


def _timer(fn: Callable, x, mode: str, calls: int) -> Callable[[], float]:
    """Time per call of ``calls`` back-to-back calls of the jitted ``fn`` on ``x``,
    compiled and warmed up, writing its output as ``mode`` says.

    IN_PLACE donates a fresh copy of ``x`` to each call; OUT_OF_PLACE passes ``x`` and
    donates a fresh spare array of the same shape, unused by ``fn``, whose buffer
    then holds the output. The copies are made outside the timing.
    """
    if mode == OUT_OF_PLACE:
        # keep_unused: jit would otherwise drop the spare, and its donation with it.
        jf = _jit(lambda v, spare: fn(v), donate_argnums=(1,), keep_unused=True)
        make = lambda: (x, jnp.copy(x))  # noqa: E731
    elif mode == IN_PLACE:
        jf = _jit(fn, donate_argnums=(0,))
        make = lambda: (jnp.copy(x),)  # noqa: E731
    else:
        jf = _jit(fn)
        make = lambda: (x,)  # noqa: E731

    def once() -> float:
        args = [make() for _ in range(calls)]
        jax.block_until_ready(args)
        t0 = time.perf_counter()
        jax.block_until_ready([jf(*a) for a in args])
        return (time.perf_counter() - t0) / calls

    once()
    once()
    return once


def _time_vs_ref(fn: Callable, ref: Callable, x, repeats: int, rounds: int, mode: str, calls: int):
    """Median time of ``fn`` and of ``ref``, and the median over rounds of their ratio.

    Each round times ``ref``, ``fn``, ``ref`` (median of ``repeats`` calls each), so
    that load from other processes affects both sides of every ratio alike.
    """
    t_fn, t_ref = _timer(fn, x, mode, calls), _timer(ref, x, mode, calls)
    ratios, fs, rs = [], [], []
    for _ in range(rounds):
        r0 = np.median([t_ref() for _ in range(repeats)])
        f = np.median([t_fn() for _ in range(repeats)])
        r1 = np.median([t_ref() for _ in range(repeats)])
        ratios.append(0.5 * (r0 + r1) / f)
        fs.append(f)
        rs.append(0.5 * (r0 + r1))
    return float(np.median(fs)), float(np.median(rs)), float(np.median(ratios))


def _in_cache_ns(fn: Callable, dtype, repeats: int, iters: int = 50) -> float:
    """Nanoseconds per element of ``fn`` on a 512 x 512 array, which stays in cache.

    This is the operator's arithmetic alone, the cost that the throughput columns add
    to the memory traffic. Each iteration evaluates ``fn(x + 1e-30 y)`` on the previous
    output ``y``: the same values (1e-30 y is far below an ulp of x), but a dependence
    that XLA cannot see through, so the operator is evaluated every time.
    """
    x = jnp.asarray(np.random.default_rng(1).normal(size=(512, 512)), dtype)
    eps = jnp.asarray(1e-30, dtype)
    loop = _jit(lambda x: jax.lax.fori_loop(0, iters, lambda i, y: fn(x + eps * y), x))
    jax.block_until_ready(loop(x))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(loop(x))
        times.append(time.perf_counter() - t0)
    return float(np.min(times)) / (iters * x.size) * 1e9


def _time_numpy(fn: Callable, x: np.ndarray, repeats: int) -> float:
    fn(x)
    times = []
    for _ in range(max(3, repeats // 3)):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _peers(x32: np.ndarray, shape: tuple[int, int]) -> dict[str, Callable]:
    peers: dict[str, Callable] = {}
    try:
        from jaxopt import prox as jprox  # type: ignore[import-not-found]

        # Not jitted here: the timer jits them, with the run's compiler options, which
        # jax rejects on a nested jit.
        peers["jaxopt.prox_lasso"] = ("jax", lambda x: jprox.prox_lasso(x, 0.5, 0.1))
        peers["jaxopt.prox_group_lasso"] = (
            "jax",
            jax.vmap(lambda col: jprox.prox_group_lasso(col, 0.5, 0.1), in_axes=1, out_axes=1),
        )
    except ImportError:
        pass
    try:
        import pyproximal  # type: ignore[import-not-found]

        peers["pyproximal.L1"] = ("numpy", lambda x: pyproximal.L1(sigma=0.5).prox(x, 0.1))
        peers["pyproximal.L0"] = ("numpy", lambda x: pyproximal.L0(sigma=0.5).prox(x, 0.1))
        peers["pyproximal.SCAD"] = (
            "numpy",
            lambda x: pyproximal.SCAD(sigma=0.5, a=3.7).prox(x, 0.1),
        )
        peers["pyproximal.L21"] = (
            "numpy",
            # L21 groups x.reshape(ndim, -1) along axis 0: the columns, as ours.
            lambda x: pyproximal.L21(ndim=shape[0], sigma=0.5).prox(x.ravel(), 0.1),
        )
    except ImportError:
        pass
    return peers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=None, help="16M on CPU, 256M otherwise")
    ap.add_argument("--calls", type=int, default=None, help="calls per timing: 1 on CPU, else 8")
    ap.add_argument("--repeats", type=int, default=7, help="timed calls per round")
    ap.add_argument("--rounds", type=int, default=3, help="ref/op/ref rounds; median ratio")
    ap.add_argument(
        "--in-place",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time with the input donated (output written in place)",
    )
    ap.add_argument(
        "--out-of-place",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time with the output written to a separate, already-written buffer",
    )
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--quick", action="store_true", help="1M elements, 5 repeats")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/)")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--ops", default=None, help="comma-separated operators (default: all)")
    add_vector_width_arg(ap)
    args = ap.parse_args()
    tag = apply_vector_width(args)
    ops = {**ELEMENTWISE, **GROUP}
    if args.ops:
        unknown = set(args.ops.split(",")) - set(ops)
        if unknown:
            ap.error(f"--ops: unknown {sorted(unknown)}; choose from {sorted(ops)}")
        ops = {k: ops[k] for k in args.ops.split(",")}
    backend = jax.default_backend()
    if args.size is None:
        args.size = 1 << 24 if backend == "cpu" else 1 << 28
    if args.calls is None:
        args.calls = 1 if backend == "cpu" else 8
    if args.quick:
        args.size, args.repeats, args.rounds = 1 << 20, 5, 2
    device = jax.devices()[0]
    kind = getattr(device, "device_kind", str(device))
    peak = PEAK_BANDWIDTH.get(kind)
    cols = 4096 if args.size >= 4096 * 64 else 256
    shape = (args.size // cols, cols)
    rng = np.random.default_rng(0)
    base = rng.normal(size=shape).astype(np.float32)

    calls = args.calls
    rows = []
    host = machine()
    print(f"{describe(host)} shape={shape}")
    header = f"{'operator':28s} {'dtype':9s} {'ms':>8s} {'GB/s':>8s} {'vs x*c':>7s}"
    # The settings timed after the allocating one: (mode, results key, ms column width).
    settings = [(IN_PLACE, "in_place", 8)] if args.in_place else []
    settings += [(OUT_OF_PLACE, "out_of_place", 10)] if args.out_of_place else []
    for mode, _, width in settings:
        label = "ms (i-p)" if mode == IN_PLACE else "ms (o-o-p)"
        header += f" {label:>{width}s} {'GB/s':>8s} {'vs x*c':>7s}"
    if peak:
        header += f" {'% peak':>7s}"
    header += f" {'ns/el (cache)':>14s}"
    print(header)
    # 1.25 is exact in bfloat16 (1.0001 would round to 1, a multiply XLA removes).
    ref = lambda x: x * jnp.asarray(1.25, x.dtype)  # noqa: E731
    for dname in args.dtypes.split(","):
        dtype = jnp.dtype(dname)
        x = jax.device_put(jnp.asarray(base, dtype))
        nbytes = 2 * x.size * dtype.itemsize
        entries = [("x * c (reference)", ref)] + list(ops.items())
        for name, fn in entries:
            t, t_ref, ratio = _time_vs_ref(fn, ref, x, args.repeats, args.rounds, ALLOCATE, calls)
            row = {
                "operator": name,
                "kind": "group" if name in GROUP else "elementwise",
                "dtype": dname,
                "seconds": t,
                "gb_per_s": nbytes / t / 1e9,
                "ratio_vs_x_times_c": ratio,
                "x_times_c_seconds": t_ref,
            }
            line = f"{name:28s} {dname:9s} {t * 1e3:8.2f} {row['gb_per_s']:8.2f} {ratio:7.2f}"
            for mode, key, width in settings:
                t, t_ref, ratio = _time_vs_ref(fn, ref, x, args.repeats, args.rounds, mode, calls)
                row.update(
                    {
                        f"{key}_seconds": t,
                        f"{key}_gb_per_s": nbytes / t / 1e9,
                        f"{key}_ratio_vs_x_times_c": ratio,
                        f"{key}_x_times_c_seconds": t_ref,
                    }
                )
                line += f" {t * 1e3:{width}.2f} {nbytes / t / 1e9:8.2f} {ratio:7.2f}"
            if peak:
                row["fraction_of_peak_bandwidth"] = nbytes / row["seconds"] / peak
                line += f" {100 * row['fraction_of_peak_bandwidth']:6.1f}%"
            row["in_cache_ns_per_element"] = _in_cache_ns(fn, dtype, args.repeats)
            line += f" {row['in_cache_ns_per_element']:14.3f}"
            rows.append(row)
            print(line, flush=True)
        if dname == "float32" and not args.no_peers:
            # A NumPy peer allocates its output like the non-donated jitted call, so
            # it is compared with the same x * c reference (timed here).
            once = _timer(ref, x, ALLOCATE, 1)
            t_ref = float(np.median([once() for _ in range(args.repeats)]))
            for name, (lib, fn) in _peers(base, shape).items():
                if lib == "jax":
                    t, _, ratio = _time_vs_ref(fn, ref, x, args.repeats, args.rounds, ALLOCATE, 1)
                else:
                    t = _time_numpy(fn, base, args.repeats)
                    ratio = t_ref / t
                rows.append(
                    {
                        "operator": name,
                        "kind": "peer",
                        "dtype": dname,
                        "seconds": t,
                        "gb_per_s": nbytes / t / 1e9,
                        "ratio_vs_x_times_c": ratio,
                    }
                )
                print(
                    f"{name:28s} {dname:9s} {t * 1e3:8.2f} {nbytes / t / 1e9:8.2f} {ratio:7.2f}",
                    flush=True,
                )

    result = {
        "benchmark": "prox throughput",
        **host,
        "peak_bandwidth_bytes_per_s": peak,
        "elements": int(np.prod(shape)),
        "shape": list(shape),
        "repeats": args.repeats,
        "rounds": args.rounds,
        "calls_per_timing": calls,
        "note": (
            "ratio_vs_x_times_c: both calls allocate their output (on CPU, page faults included);"
            " in_place_*: input donated, output written in place, as in an optimizer step;"
            " out_of_place_*: output written to a separate, already-written buffer (a"
            " donated spare), without page faults or read-modify-write;"
            " in_cache_ns_per_element: the arithmetic alone, on a 512x512 array in cache"
            " (fastest of the repeats)"
        ),
        "rows": rows,
    }
    write_results(result, f"prox_{backend}{tag}", args.out)


if __name__ == "__main__":
    main()
