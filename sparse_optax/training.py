"""A small data-parallel training loop for the examples, the demo and the benchmarks.

Each batch is sharded over all local devices along its first axis
(``jax.sharding``, data parallel); parameters and optimizer state are replicated,
and XLA's SPMD partitioner inserts the gradient all-reduce. The same code runs on
one CPU, one GPU or a TPU slice.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from sparse_optax.transforms import sparsity

__all__ = ["TrainResult", "evaluate", "kernel_stats", "train"]


def _mesh() -> Mesh:
    return Mesh(np.asarray(jax.local_devices()), ("data",))


@dataclass
class TrainResult:
    """The trained model, the final optimizer state and one record per epoch."""

    model: nnx.Module
    opt_state: Any
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def kernel_stats(model: nnx.Module) -> dict[str, Any]:
    """Fraction of exact zeros over all kernels, and live units per layer.

    A unit is live if its incoming weights are not all zero; the input count is the
    number of input features the first layer still reads.
    """
    kernels = [
        v.get_value() if hasattr(v, "get_value") else v.value
        for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
        if path[-1] == "kernel"
    ]
    stats = sparsity(kernels)
    total = sum(k.size for k in kernels)
    nonzero = sum(int(jnp.count_nonzero(k)) for k in kernels)
    # Inputs the first layer still reads (Dense rows / Conv input channels), then the
    # units of every layer with some nonzero incoming weight.
    live = [kernels[0].shape[-2] - int(stats.zero_inputs[0])] if kernels else []
    live += [k.shape[-1] - int(z) for k, z in zip(kernels, stats.zero_units, strict=True)]
    return {
        "zero_fraction": 1 - nonzero / max(total, 1),
        "weights": total,
        "nonzero": nonzero,
        "live": live,
    }


def evaluate(
    model: nnx.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1000
) -> dict[str, float]:
    """Classification error and mean cross-entropy of ``model`` on ``(x, y)``."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def stats(state, xb, yb):
        logits = nnx.merge(graphdef, state)(xb)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).sum()
        wrong = jnp.sum(jnp.argmax(logits, -1) != yb)
        return loss, wrong

    loss = wrong = 0.0
    for i in range(0, len(x), batch_size):
        batch_loss, batch_wrong = stats(state, x[i : i + batch_size], y[i : i + batch_size])
        loss += float(batch_loss)
        wrong += float(batch_wrong)
    return {"error": wrong / len(x), "loss": loss / len(x)}


def _progress(epoch: int, epochs: int, done: int, total: int, loss: float, t0: float) -> None:
    width = 24
    filled = int(width * done / total)
    bar = "#" * filled + "." * (width - filled)
    rate = done / max(time.perf_counter() - t0, 1e-9)
    sys.stderr.write(
        f"\repoch {epoch}/{epochs} [{bar}] {done}/{total} loss {loss:.4f} {rate:.0f} it/s"
    )
    sys.stderr.flush()


def train(
    model: nnx.Module,
    tx: optax.GradientTransformation,
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    epochs: int,
    batch_size: int = 128,
    seed: int = 0,
    eval_data: tuple[np.ndarray, np.ndarray] | None = None,
    on_epoch: Callable[[dict[str, float], nnx.Module], None] | None = None,
    progress: bool | None = None,
    opt_state: Any = None,
    compiler_options: dict[str, Any] | None = None,
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
) -> TrainResult:
    """Trains ``model`` (in place) with ``tx`` on softmax cross-entropy, or ``loss_fn``.

    Args:
      model: an NNX module mapping a batch of ``x_train`` to logits.
      tx: any optax transformation, e.g. ``optax.chain(optax.adam(lr),
        sparse_optax.half_threshold(lam, learning_rate=lr))``.
      epochs, batch_size, seed: the schedule; each epoch visits a fresh permutation in
        full batches. ``batch_size`` is rounded up to a multiple of the device count.
      eval_data: ``(x, y)`` evaluated after every epoch (error and loss go to history).
      on_epoch: called with each epoch's record and the model.
      progress: draw a progress bar on stderr (default: when stderr is a terminal).
      opt_state: resume from this optimizer state instead of ``tx.init``.
      compiler_options: XLA options for the jitted training step, e.g.
        ``{"xla_cpu_prefer_vector_width": 512}`` on a CPU with AVX-512 (XLA CPU emits
        256-bit vectors by default, and the polynomial prox operators are
        compute-bound there; ``benchmarks/bench_prox.py --vector-width 512``).
      loss_fn: ``loss_fn(logits, targets)``, the mean loss of a batch, where
        ``targets`` are the batch's rows of ``y_train`` (e.g. soft labels from a
        teacher). Default: softmax cross-entropy with integer labels.
      augment: ``augment(key, xb)``, applied to every training batch inside the jitted
        step with a fresh PRNG key per step (from ``seed``), e.g. input dropout or
        noise; evaluation sees the data as given.
    """
    mesh = _mesh()
    n_dev = mesh.devices.size
    batch_size = math.ceil(batch_size / n_dev) * n_dev
    data_sharding = NamedSharding(mesh, PartitionSpec("data"))
    replicated = NamedSharding(mesh, PartitionSpec())
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params = jax.device_put(params, replicated)
    opt_state = jax.device_put(tx.init(params) if opt_state is None else opt_state, replicated)

    if loss_fn is None:

        def loss_fn(logits, yb):
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def batch_loss(p, xb, yb):
        return loss_fn(nnx.merge(graphdef, p, rest)(xb), yb)

    base_key = jax.random.key(seed)

    @functools.partial(jax.jit, compiler_options=compiler_options)
    def step(p, s, xb, yb, k):
        if augment is not None:
            xb = augment(jax.random.fold_in(base_key, k), xb)
        loss, grads = jax.value_and_grad(batch_loss)(p, xb, yb)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    if progress is None:
        progress = sys.stderr.isatty()
    rng = np.random.default_rng(seed)
    steps = len(x_train) // batch_size
    history: list[dict[str, float]] = []
    t_start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        perm = rng.permutation(len(x_train))
        losses = []
        for i in range(steps):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            xb = jax.device_put(x_train[idx], data_sharding)
            yb = jax.device_put(y_train[idx], data_sharding)
            k = (epoch - 1) * steps + i
            params, opt_state, loss = step(params, opt_state, xb, yb, k)
            losses.append(loss)
            if progress and (i % 20 == 0 or i == steps - 1):
                _progress(epoch, epochs, i + 1, steps, float(loss), t0)
        if progress:
            sys.stderr.write("\n")
        nnx.update(model, params)
        record = {"epoch": epoch, "train_loss": float(jnp.mean(jnp.stack(losses)))}
        record["seconds"] = time.perf_counter() - t0
        if eval_data is not None:
            ev = evaluate(model, *eval_data)
            record.update(eval_error=ev["error"], eval_loss=ev["loss"])
        stats = kernel_stats(model)
        record.update(zero_fraction=stats["zero_fraction"], live=stats["live"])
        history.append(record)
        if on_epoch is not None:
            on_epoch(record, model)
    return TrainResult(model, opt_state, history, time.perf_counter() - t_start)
