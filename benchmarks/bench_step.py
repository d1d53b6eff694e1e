"""Cost of a proximal transform inside an optimizer step, relative to plain SGD.

(a) update only: ``tx.update`` jitted together with ``optax.apply_updates`` on a
    10M-parameter pytree of Dense-like kernels (ten ``(1000, 1000)`` kernels, each with
    a bias, which the default mask leaves alone), ``chain(sgd, X)`` against ``sgd``;
    ``--kernels N`` splits the same 10M weights into N kernels of ``(10000 / N, 1000)``;
(b) a full jitted training step (forward, backward, update) of LeNet-300-100
    (784-300-100-10 MLP, relu) on MNIST-shaped batches of 256, with and without X.

Both are timed after warm-up, parameters and optimizer state donated, alternating the
two programs in the same process; the ratio is the median over rounds of the ratio of
per-round median times (robust to other processes sharing the cores). Writes
``benchmarks/results/step_<backend>.json``.

    python benchmarks/bench_step.py            # full
    python benchmarks/bench_step.py --quick    # fewer repeats
    python benchmarks/bench_step.py --vector-width 512   # 512-bit vectors on CPU
    python benchmarks/bench_step.py --kernels 1   # (a) on one (10000, 1000) kernel

``--kernels 1`` holds the weights in one 40 MB kernel, which glibc always maps on its
own, where ten 4 MB kernels mostly come from its heap; on one 2-core machine the
root-finding transforms ran up to twice as fast on mapped buffers (``bench_placement.py``
measures that directly; see the results README).

``--vector-width`` compiles both programs of every pair with XLA's
``xla_cpu_prefer_vector_width`` option and writes ``step_<backend>_vw<bits>.json``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

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

import sparse_optax as so
from sparse_optax.models import LeNet300100Linen

LR = 0.01
TRANSFORMS: dict[str, Callable[[], optax.GradientTransformation]] = {
    "soft_threshold": lambda: so.soft_threshold(1e-4),
    "hard_threshold": lambda: so.hard_threshold(1e-4),
    "half_threshold": lambda: so.half_threshold(1e-4),
    "two_thirds_threshold": lambda: so.two_thirds_threshold(1e-4),
    "transformed_l1": lambda: so.transformed_l1(1e-4, a=1.0),
    "capped_l1": lambda: so.capped_l1(1e-4, rho=10.0),
    "mcp": lambda: so.mcp(1e-4),
    "scad": lambda: so.scad(1e-4),
    "group_lasso": lambda: so.group_lasso(1e-4),
    "group_hard_threshold": lambda: so.group_hard_threshold(1e-4),
    "exclusive_lasso": lambda: so.exclusive_lasso(1e-5),
    "sparse_group_lasso": lambda: so.sparse_group_lasso(1e-4, alpha=0.5),
    "l1_exclusive": lambda: so.l1_exclusive(1e-5, mu=0.5),
    "tl1_group": lambda: so.tl1_group(1e-4, a=1.0, alpha=0.5),
}
GROUP = {
    "group_lasso",
    "group_hard_threshold",
    "exclusive_lasso",
    "sparse_group_lasso",
    "l1_exclusive",
    "tl1_group",
}


def median_time(step: Callable, carry, args, repeats: int):
    """Median time of ``repeats`` calls ``carry = step(*carry, *args)``, and the carry."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        carry = step(*carry, *args)
        jax.block_until_ready(carry)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), carry


def _compare(make_step: Callable, init: Callable, args, tx_x, repeats: int, rounds: int):
    """Median over rounds of t(chain(sgd, X)) / t(sgd), and the median times."""
    progs = {}
    for name, tx in (("sgd", optax.sgd(LR)), ("x", optax.chain(optax.sgd(LR), tx_x))):
        step = jax.jit(
            make_step(tx), donate_argnums=(0, 1), compiler_options=COMPILER_OPTIONS or None
        )
        carry = init(tx)
        for _ in range(2):  # compile, warm up
            carry = step(*carry, *args)
        jax.block_until_ready(carry)
        progs[name] = [step, carry]
    ratios, t_sgd, t_x = [], [], []
    for _ in range(rounds):
        ts = {}
        for name in ("sgd", "x", "sgd"):
            step, carry = progs[name]
            t, progs[name][1] = median_time(step, carry, args, repeats)
            ts.setdefault(name, []).append(t)
        base = float(np.mean(ts["sgd"]))
        ratios.append(ts["x"][0] / base)
        t_sgd.append(base)
        t_x.append(ts["x"][0])
    return float(np.median(ratios)), float(np.median(t_sgd)), float(np.median(t_x))


def _kernel_shape(kernels: int) -> tuple[int, int]:
    # The 10M weights of (a), split into `kernels` Dense kernels (each with a bias).
    return (10_000 // kernels, 1000)


def update_weights(kernels: int = 10) -> tuple[dict, dict]:
    """The weights and gradients of (a): ``kernels`` Dense kernels, each with a bias."""
    rng = np.random.default_rng(0)
    shape = _kernel_shape(kernels)
    params = {
        f"dense_{i}": {
            "kernel": jnp.asarray(rng.normal(size=shape) * 0.03, jnp.float32),
            "bias": jnp.zeros(shape[1:], jnp.float32),
        }
        for i in range(kernels)
    }
    grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape) * 0.01, p.dtype), params)
    return params, grads


def update_step(tx: optax.GradientTransformation) -> Callable:
    """The step of (a), not jitted: ``tx.update`` and ``optax.apply_updates``."""

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def bench_update(names, repeats: int, rounds: int, kernels: int = 10) -> list[dict]:
    params, grads = update_weights(kernels)
    n_params = sum(p.size for p in jax.tree.leaves(params))

    def init(tx):
        p = jax.tree.map(jnp.copy, params)
        return p, tx.init(p)

    rows = []
    where = "one kernel" if kernels == 1 else f"{kernels} kernels"
    print(f"(a) update only, {n_params / 1e6:.1f}M parameters in {where}: chain(sgd, X) / sgd")
    print("    (writes: kernel-sized arrays written per kernel; 1 = update fused into the prox)")
    for name in names:
        tx_x = TRANSFORMS[name]()
        ratio, t0, t1 = _compare(update_step, init, (grads,), tx_x, repeats, rounds)
        writes = _kernel_writes(optax.chain(optax.sgd(LR), tx_x), update_step, init, grads)
        rows.append(
            {
                "transform": name,
                "ratio": ratio,
                "sgd_ms": 1e3 * t0,
                "chain_ms": 1e3 * t1,
                "kernel_writes": writes,
            }
        )
        print(
            f"  {name:22s} {ratio:6.3f}   ({1e3 * t0:7.2f} ms -> {1e3 * t1:7.2f} ms)"
            f"   writes {writes:g}",
            flush=True,
        )
    return rows


def _kernel_writes(tx, make_step: Callable, init: Callable, grads) -> float:
    """Kernel-sized arrays the compiled step writes, per kernel (1 = only the result).

    More than one means an intermediate such as p - lr*g goes to memory and is read
    back instead of being fused into the prox.
    """
    params, state = init(tx)
    kernels = [p for p in jax.tree.leaves(params) if p.ndim >= 2]
    shapes = {p.shape for p in kernels}
    # Matched by their HLO type: one float32 kernel shape, as bench_update builds them.
    assert len(shapes) == 1 and all(p.dtype == jnp.float32 for p in kernels)
    hlo_shape = f"f32[{','.join(map(str, shapes.pop()))}]"
    jitted = jax.jit(make_step(tx), compiler_options=COMPILER_OPTIONS or None)
    text = jitted.lower(params, state, grads).compile().as_text()
    entry = text[text.index("ENTRY") :].splitlines()
    writes = sum(1 for line in entry if f"= {hlo_shape}" in line and "fusion(" in line)
    return writes / len(kernels)


def bench_train(names, repeats: int, rounds: int, batch: int = 256) -> list[dict]:
    model = LeNet300100Linen()
    rng = np.random.default_rng(1)
    images = jnp.asarray(rng.uniform(size=(batch, 28, 28, 1)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 10, size=(batch,)), jnp.int32)
    params0 = model.init(jax.random.key(0), images)

    def make_step(tx):
        def step(params, state, images, labels):
            def loss_fn(p):
                logits = model.apply(p, images)
                return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

            grads = jax.grad(loss_fn)(params)
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        return step

    def init(tx):
        p = jax.tree.map(jnp.copy, params0)
        return p, tx.init(p)

    rows = []
    print(f"(b) LeNet-300-100 training step, batch {batch}: with X / without")
    for name in names:
        ratio, t0, t1 = _compare(
            make_step, init, (images, labels), TRANSFORMS[name](), repeats, rounds
        )
        rows.append({"transform": name, "ratio": ratio, "sgd_ms": 1e3 * t0, "chain_ms": 1e3 * t1})
        print(f"  {name:22s} {ratio:6.3f}   ({1e3 * t0:7.3f} ms -> {1e3 * t1:7.3f} ms)", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=15, help="timed calls per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default=None, help="comma-separated transform names")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--kernels",
        type=int,
        default=10,
        choices=[1, 2, 5, 10, 20, 40],
        help="kernels of (10000 / N, 1000) holding the 10M weights of (a) (default 10)",
    )
    add_vector_width_arg(ap)
    args = ap.parse_args()
    tag = apply_vector_width(args) + (f"_k{args.kernels}" if args.kernels != 10 else "")
    if args.quick:
        args.repeats, args.rounds = 5, 3
    names = args.only.split(",") if args.only else list(TRANSFORMS)
    host = machine()
    print(describe(host))
    update_rows = bench_update(names, args.repeats, args.rounds, args.kernels)
    rows, cols = _kernel_shape(args.kernels)
    train_rows = bench_train(names, 4 * args.repeats, args.rounds)
    result = {
        "benchmark": "optimizer step overhead",
        **host,
        "optax_version": optax.__version__,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "update_only": {
            "parameters": args.kernels * (rows + 1) * cols,
            "kernels": [args.kernels, [rows, cols]],
            "rows": update_rows,
        },
        "train_step": {"model": "LeNet-300-100", "batch": 256, "rows": train_rows},
        "group_transforms": sorted(GROUP),
    }
    write_results(result, f"step_{host['backend']}{tag}", args.out)


if __name__ == "__main__":
    main()
