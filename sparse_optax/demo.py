"""Train LeNet-300-100 sparse, compact it, and show how much smaller it got.

    python -m sparse_optax.demo                       # MNIST, half thresholding
    python -m sparse_optax.demo --penalty group_lasso --lam 0.05 --epochs 5

The data is read from ``$SPARSE_OPTAX_DATA``, then ``~/.cache/sparse_optax``, then
downloaded. Offline and without the files, the demo says where it looked and runs on
scikit-learn's 8x8 digits instead (``pip install 'sparse_optax[demo]'``), so the whole
pipeline still shows. Batches are sharded over all local devices.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import optax
from flax import nnx, serialization

import sparse_optax as so
from sparse_optax import data as data_lib
from sparse_optax.models import LeNet300100
from sparse_optax.training import evaluate, kernel_stats, train

# Each penalty's transform, with the shape parameters the demo uses.
PENALTIES: dict[str, Callable[..., optax.GradientTransformation]] = {
    "half": so.half_threshold,
    "two_thirds": so.two_thirds_threshold,
    "l1": so.soft_threshold,
    "l0": so.hard_threshold,
    "tl1": lambda lam, a=1.0, **kw: so.transformed_l1(lam, a=a, **kw),
    "capped_l1": lambda lam, rho=50.0, **kw: so.capped_l1(lam, rho=rho, **kw),
    "mcp": so.mcp,
    "scad": so.scad,
    "group_lasso": so.group_lasso,
    "group_l0": so.group_hard_threshold,
    "sparse_group_lasso": lambda lam, alpha=0.5, **kw: so.sparse_group_lasso(
        lam, alpha=alpha, **kw
    ),
    "l1_exclusive": lambda lam, mu=0.5, **kw: so.l1_exclusive(lam, mu=mu, **kw),
    "tl1_group": lambda lam, a=1.0, alpha=0.5, **kw: so.tl1_group(lam, a=a, alpha=alpha, **kw),
}


def _load(name: str) -> data_lib.Dataset:
    if name == "digits":
        return data_lib.load_digits_fallback()
    try:
        return data_lib.load_dataset(name)
    except data_lib.DatasetNotFoundError as err:
        print(f"{err}\n\nFalling back to scikit-learn's 8x8 digits.\n", file=sys.stderr)
        return data_lib.load_digits_fallback()


def _fmt_units(units: list[int]) -> str:
    return "-".join(str(u) for u in units)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        prog="python -m sparse_optax.demo",
        description="Sparse training of LeNet-300-100, then compaction.",
    )
    ap.add_argument("--penalty", choices=sorted(PENALTIES), default="half")
    ap.add_argument("--lam", type=float, default=5e-4, help="penalty strength (default 5e-4)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (momentum 0.9)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--dataset", choices=["mnist", "fashion_mnist", "digits"], default="mnist")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="sparse_optax_demo", help="where to save the compacted model")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    ds = _load(args.dataset)
    n_in = int(np.prod(ds.x_train.shape[1:]))
    x_train = ds.x_train.reshape(len(ds.x_train), -1)
    x_test = ds.x_test.reshape(len(ds.x_test), -1)
    print(
        f"{ds.name}: {len(x_train)} train / {len(x_test)} test, {n_in} inputs; "
        f"devices: {jax.device_count()} x {jax.devices()[0].platform}"
    )

    model = LeNet300100(in_features=n_in, rngs=nnx.Rngs(args.seed))
    steps_per_epoch = len(x_train) // args.batch_size
    total = steps_per_epoch * args.epochs
    # SGD with momentum and cosine decay; the penalty ramps up over the first epoch so
    # the network first learns which weights matter. Passing the same learning rate to
    # the prox gives the proximal gradient step prox(p + u, lr, lam) of the papers.
    # (lam was chosen on a validation split carved from the training set.)
    lr = optax.cosine_decay_schedule(args.lr, total)
    lam = optax.linear_schedule(0.0, args.lam, steps_per_epoch)
    tx = optax.chain(optax.sgd(lr, momentum=0.9), PENALTIES[args.penalty](lam, learning_rate=lr))

    def on_epoch(rec: dict, _model) -> None:
        print(
            f"epoch {rec['epoch']:2d}  loss {rec['train_loss']:.4f}  "
            f"test error {100 * rec['eval_error']:5.2f}%  "
            f"zero weights {100 * rec['zero_fraction']:5.2f}%  "
            f"live units {_fmt_units(rec['live'])}  ({rec['seconds']:.1f}s)",
            flush=True,
        )

    print(f"training with {args.penalty} (lam={args.lam}), {args.epochs} epochs")
    result = train(
        model,
        tx,
        x_train,
        ds.y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        eval_data=(x_test, ds.y_test),
        on_epoch=on_epoch,
        progress=False if args.no_progress else None,
        # 512-bit vector code where the CPU has it: the prox is compute-bound on CPU
        # and XLA emits 256-bit code by default (a preference; no-op without AVX-512).
        compiler_options=(
            {"xla_cpu_prefer_vector_width": 512} if jax.default_backend() == "cpu" else None
        ),
    )

    t0 = time.perf_counter()
    small, report = so.compact(model, x_test[:256])
    t_compact = time.perf_counter() - t0
    before = evaluate(model, x_test, ds.y_test)
    after = evaluate(small, x_test[:, report.kept_inputs], ds.y_test)
    # compact() already checked the outputs; the test predictions must agree too.
    if abs(before["error"] - after["error"]) > 1e-9:
        raise RuntimeError(f"compacted model's test error {after['error']} != {before['error']}")
    stats = kernel_stats(model)

    units_before = [n_in, 300, 100, 10]
    units_after = [len(report.kept_inputs), *small.hidden, 10]
    summary = {
        "dataset": ds.name,
        "penalty": args.penalty,
        "lam": args.lam,
        "epochs": args.epochs,
        "seed": args.seed,
        "test_error": after["error"],
        "zero_weights": stats["zero_fraction"],
        "nonzero_weights": stats["nonzero"],
        "units_before": units_before,
        "units_after": units_after,
        "params_before": report.params_before,
        "params_after": report.params_after,
        "flops_before": report.flops_before,
        "flops_after": report.flops_after,
        "max_abs_output_difference": report.max_abs_error,
        "train_seconds": result.seconds,
        "compact_seconds": t_compact,
    }

    print()
    print(report)
    print()
    rows = [
        ("test error", f"{100 * before['error']:.2f}%", f"{100 * after['error']:.2f}%"),
        ("zero weights", f"{100 * stats['zero_fraction']:.2f}%", "-"),
        ("units (input-h1-h2-out)", _fmt_units(units_before), _fmt_units(units_after)),
        ("parameters", f"{report.params_before:,}", f"{report.params_after:,}"),
        (
            "nonzero weights",
            f"{stats['nonzero']:,} of {stats['weights']:,}",
            f"{stats['nonzero']:,}",
        ),
        ("FLOPs / example", f"{report.flops_before:,.0f}", f"{report.flops_after:,.0f}"),
    ]
    print(f"{'':26s}{'trained':>18s}{'compacted':>18s}")
    for name, b, a in rows:
        print(f"{name:26s}{b:>18s}{a:>18s}")
    print(
        f"compression: {report.params_before / report.params_after:.1f}x fewer parameters "
        f"and {report.flops_before / report.flops_after:.1f}x fewer FLOPs after compaction; "
        f"{stats['weights'] / max(stats['nonzero'], 1):.0f}x fewer nonzero weights; outputs "
        f"match (max |difference| {report.max_abs_error:.1e})"
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = nnx.to_pure_dict(nnx.state(small, nnx.Param))
    (out / "model.msgpack").write_bytes(serialization.msgpack_serialize(state))
    arch = {
        "class": "sparse_optax.models.LeNet300100",
        "in_features": len(report.kept_inputs),
        "hidden": list(small.hidden),
        "kept_inputs": [int(i) for i in report.kept_inputs],
    }
    (out / "model.json").write_text(
        json.dumps({"architecture": arch, "metrics": summary}, indent=1)
    )
    print(f"saved the compacted model to {out}/model.msgpack (+ model.json: widths, kept inputs)")
    return summary


def load_compacted(path: str | Path) -> tuple[LeNet300100, np.ndarray]:
    """Loads a model saved by the demo; returns it and the input indices it reads."""
    path = Path(path)
    meta = json.loads((path / "model.json").read_text())["architecture"]
    model = LeNet300100(meta["in_features"], tuple(meta["hidden"]), rngs=nnx.Rngs(0))
    state = serialization.msgpack_restore((path / "model.msgpack").read_bytes())
    nnx.update(model, state)
    return model, np.asarray(meta["kept_inputs"])


if __name__ == "__main__":
    main()
