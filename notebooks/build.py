# ruff: noqa: E501 (markdown tables)
"""Writes the example notebooks from the cell sources below, and optionally runs them.

    python notebooks/build.py                # rewrite 01_*.ipynb ... 03_*.ipynb
    python notebooks/build.py --execute      # rewrite, then run each in full mode and save
    python notebooks/build.py --execute 03   # only the notebooks whose name contains "03"

The committed notebooks carry the outputs of a full (non-quick) run, so their plots show
on GitHub. Edit the cells here and rebuild rather than editing the ``.ipynb`` files by
hand, so that the three notebooks keep the same install and parameter cells. Without
``--execute`` a notebook keeps its saved outputs when only its markdown changed; if any
code cell changed, its outputs are dropped and the script says to re-execute. Executing
needs ``pip install -e ".[notebooks]"`` and MNIST (``$SPARSE_OPTAX_DATA``, the cache, or
a download); the cells are checked with ``ruff check``/``ruff format --check``.
``tests/test_notebooks.py`` runs the committed notebooks in quick mode.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
REPO = "sparse-optax/sparse_optax"  # placeholder until the repository URL is final
COLAB = f"https://colab.research.google.com/github/{REPO}/blob/main/notebooks"
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def badge(name: str) -> str:
    return f"[![Open In Colab]({BADGE})]({COLAB}/{name})"


INSTALL = f'''\
# On Colab (or wherever sparse_optax is not installed yet) install it from GitHub.
# Skipped when sparse_optax is already importable, e.g. in a local checkout.
import importlib.util

if importlib.util.find_spec("sparse_optax") is None:
    %pip install -q "sparse_optax @ git+https://github.com/{REPO}"'''

DEVICE = """\
# JAX uses a GPU or TPU automatically when there is one (on Colab: Runtime > Change
# runtime type); `train` shards every batch over all local devices.
backend = jax.default_backend()
print(f"JAX {jax.__version__}: {jax.device_count()} x {backend} ({jax.devices()[0].device_kind})")
if backend == "cpu":
    print("No GPU/TPU found; running on the CPU.")"""


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, *tags: str):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


# --------------------------------------------------------------------------- 01

NB01 = [
    md(
        f"""
# Quickstart: train a sparse LeNet-300-100 and shrink it

{badge("01_quickstart.ipynb")}

This notebook trains the classic LeNet-300-100 network (784-300-100-10) on MNIST with
**proximal SGD**: after every SGD step, `sparse_optax.half_threshold` applies the
proximal operator of the $\\ell_{{1/2}}$ penalty, which sets small weights to *exactly*
zero. We watch the network get sparser while it learns, then `sparse_optax.compact`
physically removes the dead units and unused input pixels and reports how much smaller
the model got.

A full run takes about a minute on a CPU and seconds on a GPU.
"""
    ),
    code(INSTALL),
    md(
        """
## Parameters

With the environment variable `SPARSE_OPTAX_QUICK=1` (what the tests use) the notebook
only trains for one epoch on 5,000 images, as a smoke test.
"""
    ),
    code(
        """
import os

QUICK = os.environ.get("SPARSE_OPTAX_QUICK", "0") == "1"

EPOCHS = 1 if QUICK else 20  # full run: ~98% of the weights end up exactly zero
TRAIN_SUBSET = 5_000 if QUICK else None  # None: all 60,000 training images
BATCH_SIZE = 128
LEARNING_RATE = 0.1  # SGD with momentum 0.9 and cosine decay
LAM = 5e-4  # strength of the l1/2 penalty
SEED = 0
""",
        "parameters",
    ),
    code(
        """
import jax
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx
from IPython.display import Markdown, display

import sparse_optax as so
from sparse_optax.data import load_dataset
from sparse_optax.models import LeNet300100
from sparse_optax.training import evaluate, kernel_stats, train

"""
        + DEVICE
    ),
    md(
        """
## Data

`load_dataset("mnist")` reads the files from `$SPARSE_OPTAX_DATA` or the user cache,
and otherwise downloads them (11 MB, checksummed). Images are float32 in [0, 1]; the MLP
sees each one as a vector of 784 pixels.
"""
    ),
    code(
        """
ds = load_dataset("mnist")
x_train = ds.x_train.reshape(len(ds.x_train), -1)[:TRAIN_SUBSET]
y_train = ds.y_train[:TRAIN_SUBSET]
x_test = ds.x_test.reshape(len(ds.x_test), -1)
y_test = ds.y_test
print(f"{len(x_train):,} training and {len(x_test):,} test images of {x_train.shape[1]} pixels")
"""
    ),
    md(
        """
## The optimizer: SGD followed by a proximal step

`sparse_optax.half_threshold(lam, learning_rate=lr)` is an ordinary optax transform. Chained
after `optax.sgd(lr)` it turns each step into the proximal gradient step

$$p \\leftarrow \\operatorname{prox}_{\\,\\mathrm{lr}\\cdot\\lambda\\,|\\cdot|^{1/2}}
\\big(p - \\mathrm{lr}\\,\\nabla f(p)\\big),$$

which maps every weight whose magnitude is below a threshold to exactly 0 (see the
[penalty gallery](02_penalty_gallery.ipynb) for the shape of this map). By default the
prox touches kernels only (leaves with `ndim >= 2`), not biases. `lam` warms up
linearly from 0 over the first epoch so that the network first learns which weights
matter.
"""
    ),
    code(
        """
model = LeNet300100(rngs=nnx.Rngs(SEED))
steps_per_epoch = len(x_train) // BATCH_SIZE
lr = optax.cosine_decay_schedule(LEARNING_RATE, EPOCHS * steps_per_epoch)
lam = optax.linear_schedule(0.0, LAM, steps_per_epoch)
tx = optax.chain(
    optax.sgd(lr, momentum=0.9),
    so.half_threshold(lam, learning_rate=lr),
)


def log(rec, _model):
    live = "-".join(map(str, rec["live"]))
    print(
        f"epoch {rec['epoch']:2d}  loss {rec['train_loss']:.4f}  "
        f"test error {100 * rec['eval_error']:5.2f}%  zeros {100 * rec['zero_fraction']:6.2f}%  "
        f"live units {live:>15}  ({rec['seconds']:.1f}s)"
    )


result = train(
    model,
    tx,
    x_train,
    y_train,
    epochs=EPOCHS,
    batch_size=BATCH_SIZE,
    seed=SEED,
    eval_data=(x_test, y_test),
    on_epoch=log,
    progress=False,
)
print(f"trained in {result.seconds:.0f}s")
"""
    ),
    md(
        """
## Training curves

The network keeps learning while more and more of its weights become exactly zero, and
whole units die (a unit is *live* while any of its incoming weights is nonzero; the
input count is the number of pixels the first layer still reads).
"""
    ),
    code(
        """
hist = result.history
epochs = [h["epoch"] for h in hist]
live = np.array([h["live"] for h in hist])

fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
axes[0].plot(epochs, [h["train_loss"] for h in hist], "o-")
axes[0].set(title="training loss", xlabel="epoch", ylabel="cross-entropy", yscale="log")
axes[1].plot(epochs, [100 * h["eval_error"] for h in hist], "o-", color="C3")
axes[1].set(title="test error", xlabel="epoch", ylabel="%")
axes[2].plot(epochs, [100 * h["zero_fraction"] for h in hist], "o-", color="C2")
axes[2].set(title="weights that are exactly zero", xlabel="epoch", ylabel="%", ylim=(0, 100))
for i, name in enumerate(["input pixels", "fc1 units", "fc2 units"]):
    axes[3].plot(epochs, live[:, i], "o-", label=name)
axes[3].set(title="live units", xlabel="epoch", ylabel="count", yscale="log")
axes[3].legend()
for ax in axes:
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
"""
    ),
    md(
        """
## What is left

Left: the pixels that the first layer still reads. Right: the nonzero weights of the
first layer's kernel (784 inputs x 300 units); empty columns are dead units.
"""
    ),
    code(
        """
w1 = np.asarray(model.fc1.kernel[...])
fig, axes = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [1, 3]})
axes[0].imshow((w1 != 0).any(axis=1).reshape(28, 28), cmap="Greys", vmin=0, vmax=1)
axes[0].set(title="pixels still read (black)", xticks=[], yticks=[])
axes[1].imshow((w1 != 0).T, cmap="Greys", aspect="auto", interpolation="nearest")
axes[1].set(
    title=f"nonzeros of fc1's kernel: {np.count_nonzero(w1):,} of {w1.size:,}",
    xlabel="input pixel",
    ylabel="fc1 unit",
)
fig.tight_layout()
plt.show()
"""
    ),
    md(
        """
## Compact

Zeros alone do not make a network smaller or faster. `sparse_optax.compact` traces the
model, finds units whose weights are all zero (or whose output is a constant, which it
folds into the next bias), removes them from the arrays, and checks that the new model
computes the same outputs. It also drops input pixels that nothing reads: call the new
model on `x[:, report.kept_inputs]`.
"""
    ),
    code(
        """
small, report = so.compact(model, x_test[:256])
print(report)
"""
    ),
    code(
        """
before = evaluate(model, x_test, y_test)
after = evaluate(small, x_test[:, report.kept_inputs], y_test)
stats = kernel_stats(model)
units_before = "-".join(map(str, [784, 300, 100, 10]))
units_after = "-".join(map(str, [len(report.kept_inputs), *small.hidden, 10]))

err_before, err_after = 100 * before["error"], 100 * after["error"]
nonzero, kept = stats["nonzero"], 100 * (1 - stats["zero_fraction"])
smaller = report.params_before / report.params_after
fewer_flops = report.flops_before / report.flops_after
table = f\"\"\"
| | trained (dense arrays) | compacted |
|---|---:|---:|
| test error | {err_before:.2f}% | {err_after:.2f}% |
| units (input-h1-h2-out) | {units_before} | {units_after} |
| parameters | {report.params_before:,} | {report.params_after:,} |
| nonzero weights | {nonzero:,} | {nonzero:,} |
| FLOPs per example | {report.flops_before:,.0f} | {report.flops_after:,.0f} |

The compacted model is **{smaller:.1f}x smaller** and needs **{fewer_flops:.1f}x fewer
FLOPs** per image; only {kept:.1f}% of the original weights are nonzero.
\"\"\"
display(Markdown(table))
"""
    ),
    md(
        """
The compacted arrays are still mostly zeros: $\\ell_{1/2}$ prunes individual weights,
and compaction can only remove the units that lost *all* of them. Store the remaining
weights in a sparse format to go further, or use a structured penalty that removes whole
units and filters ([notebook 03](03_compact_lenet5.ipynb)).
"""
    ),
    md(
        """
## Next steps

* [02_penalty_gallery.ipynb](02_penalty_gallery.ipynb): what each of the 13 penalties
  does to a weight, and when to use which.
* [03_compact_lenet5.ipynb](03_compact_lenet5.ipynb): a structured penalty that removes
  whole convolution filters, and the speed-up it buys.
* Fine-tune the sparse model without losing zeros:
  `optax.chain(optax.adam(1e-4), so.keep_zeros())`.
* The same run from the command line: `python -m sparse_optax.demo`.
"""
    ),
]

# --------------------------------------------------------------------------- 02

NB02 = [
    md(
        f"""
# Penalty gallery: what each proximal operator does

{badge("02_penalty_gallery.ipynb")}

Every `sparse_optax.prox_*(x, step, lam)` returns

$$\\operatorname{{prox}}(x) = \\operatorname*{{argmin}}_z\\ \\tfrac12\\|z - x\\|^2 +
\\mathrm{{step}}\\cdot P_\\lambda(z),$$

the point that trades off staying close to $x$ against a small penalty $P_\\lambda$
(`sparse_optax.penalty_*(z, lam)`). In training, $x$ is a weight right after the
optimizer's step and `step` is the learning rate: the prox is what one step of
`optax.chain(optimizer, sparse_optax.<transform>(lam, learning_rate=lr))` does to it.
Rather than reading formulas, look at the pictures. Everything here runs in seconds.
"""
    ),
    code(INSTALL),
    code(
        """
import os

QUICK = os.environ.get("SPARSE_OPTAX_QUICK", "0") == "1"
POINTS = 201 if QUICK else 1201  # samples per 1-D curve
GRID = 81 if QUICK else 201  # pixels per side of the 2-D pictures
""",
        "parameters",
    ),
    code(
        """
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

import sparse_optax as so
"""
    ),
    md(
        """
## Elementwise penalties

For each operator: the penalty $P_\\lambda(x)$ (left) and the thresholding map
$x \\mapsto \\operatorname{prox}(x, 1, \\lambda)$ (right) for three values of $\\lambda$.
The dashed diagonal is the identity (no penalty). Where a curve is flat at 0 the weight
becomes exactly zero; how far a curve stays below the diagonal for large $x$ is the
*shrinkage bias* applied to the weights that survive.
"""
    ),
    code(
        """
LAMS = [0.25, 0.5, 1.0]
# name: (penalty, prox, shape parameters, transform to use in training)
SCALAR = {
    "$\\\\ell_1$ (soft thresholding)": (so.penalty_l1, so.prox_l1, {}, "soft_threshold"),
    "$\\\\ell_0$ (hard thresholding)": (so.penalty_l0, so.prox_l0, {}, "hard_threshold"),
    "$\\\\ell_{1/2}$": (so.penalty_half, so.prox_half, {}, "half_threshold"),
    "$\\\\ell_{2/3}$": (so.penalty_two_thirds, so.prox_two_thirds, {}, "two_thirds_threshold"),
    "transformed $\\\\ell_1$, a=1": (so.penalty_tl1, so.prox_tl1, {"a": 1.0}, "transformed_l1"),
    "capped $\\\\ell_1$, $\\\\rho$=2": (
        so.penalty_capped_l1,
        so.prox_capped_l1,
        {"rho": 2.0},
        "capped_l1",
    ),
    "MCP, $\\\\gamma$=3": (so.penalty_mcp, so.prox_mcp, {"gamma": 3.0}, "mcp"),
    "SCAD, a=3.7": (so.penalty_scad, so.prox_scad, {"a": 3.7}, "scad"),
}

xs = jnp.linspace(-3.0, 3.0, POINTS)  # odd length: contains 0 exactly
xs_nonzero = xs[xs != 0]
zero = jnp.zeros(1)


def curves(pen, prox, kw):
    # Jitted once per operator, with lam as an argument; penalty_* sums, hence the vmap.
    pen_at = jax.jit(jax.vmap(lambda v, lam: pen(v, lam, **kw), in_axes=(0, None)))
    return pen_at, jax.jit(lambda x, lam: prox(x, 1.0, lam, **kw))


fig, axes = plt.subplots(4, 4, figsize=(15, 13))
for k, (name, (pen, prox, kw, tx_name)) in enumerate(SCALAR.items()):
    ax_pen, ax_prox = axes[k // 2, 2 * (k % 2)], axes[k // 2, 2 * (k % 2) + 1]
    pen_at, prox_at = curves(pen, prox, kw)
    for j, lam in enumerate(LAMS):
        # The curve skips x = 0 and a dot marks P(0) = 0, which matters for l0.
        ax_pen.plot(xs_nonzero, pen_at(xs_nonzero, lam), color=f"C{j}", label=f"$\\\\lambda$ = {lam}")
        ax_pen.plot(zero, pen_at(zero, lam), "o", color=f"C{j}", ms=4)
        ax_prox.plot(xs, prox_at(xs, lam), color=f"C{j}", label=f"$\\\\lambda$ = {lam}")
    ax_prox.plot(xs, xs, "k--", lw=0.8, alpha=0.5)
    ax_pen.set(title=f"{name}: penalty", xlabel="x", ylabel="$P_\\\\lambda(x)$", ylim=(-0.1, 3.1))
    ax_prox.set(title=f"so.{tx_name}: prox(x)", xlabel="x", ylabel="prox(x, 1, $\\\\lambda$)")
    ax_prox.set_aspect("equal")
for ax in axes.flat:
    ax.grid(alpha=0.3)
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
handles, labels = axes[0, 0].get_legend_handles_labels()
fig.legend(handles, labels, loc="upper center", ncol=3, fontsize=12, bbox_to_anchor=(0.5, 1.01))
fig.tight_layout(rect=(0, 0, 1, 0.98))
plt.show()
"""
    ),
    md(
        """
Reading the maps:

* **$\\ell_1$** shrinks *every* weight by $\\lambda$: a continuous map, but the survivors
  are biased towards 0.
* **$\\ell_0$** keeps a weight untouched or kills it (threshold $\\sqrt{2\\lambda}$): no
  bias, but a jump.
* **$\\ell_{1/2}$, $\\ell_{2/3}$ and transformed $\\ell_1$** sit in between: a jump at the
  threshold (no tiny weights survive) and a bias that fades for large weights.
* **Capped $\\ell_1$, MCP and SCAD** act like $\\ell_1$ near zero and leave large weights
  exactly alone (the map meets the diagonal), so they are unbiased for large weights.
  MCP and SCAD stay continuous, which keeps training stable; capped $\\ell_1$ turns into
  hard thresholding once $\\lambda$ is large.
"""
    ),
    md(
        """
## Group and exclusive penalties in 2-D

The group operators couple weights. Take two weights $x = (x_1, x_2)$ that form **one
group**. Each panel colours the plane by which coordinates survive one proximal step
($\\lambda = 1$, step 1), and the arrows show where a point moves.

* **$\\ell_1$** (no groups, for reference): each coordinate is thresholded on its own.
* **Group lasso** $\\lambda\\|x\\|_2$: the whole group dies inside a disc, and otherwise
  shrinks towards 0 radially: groups (neurons, filters) live or die together.
* **Exclusive lasso** $\\frac{\\lambda}{2}\\|x\\|_1^2$: the coordinates compete. The
  largest one always survives; the smaller one dies in a wedge around the axes.
* **Sparse group lasso, $\\ell_1$ + exclusive, TL1 + group**: mixtures of the above.
"""
    ),
    code(
        """
LAM_2D = 1.0
GROUPED = {
    "$\\\\ell_1$ (no groups)": lambda p: so.prox_l1(p, 1.0, LAM_2D),
    "group lasso": lambda p: so.prox_group_lasso(p, 1.0, LAM_2D, axis=0),
    "exclusive lasso": lambda p: so.prox_exclusive(p, 1.0, LAM_2D, axis=0),
    "sparse group lasso, $\\\\alpha$=0.5": lambda p: so.prox_sparse_group_lasso(
        p, 1.0, LAM_2D, alpha=0.5, axis=0
    ),
    "$\\\\ell_1$ + exclusive, $\\\\mu$=0.5": lambda p: so.prox_l1_exclusive(
        p, 1.0, LAM_2D, mu=0.5, axis=0
    ),
    "TL1 + group, a=1, $\\\\alpha$=0.5": lambda p: so.prox_tl1_group(
        p, 1.0, LAM_2D, a=1.0, alpha=0.5, axis=0
    ),
}
# Each row (x1, x2) of a (n, 2) array is one group: group g is the slice g along axis 0.
side = jnp.linspace(-2.5, 2.5, GRID)
X1, X2 = jnp.meshgrid(side, side)
plane = jnp.stack([X1.ravel(), X2.ravel()], axis=1)
coarse = jnp.linspace(-2.25, 2.25, 10)
C1, C2 = jnp.meshgrid(coarse, coarse)
arrows = jnp.stack([C1.ravel(), C2.ravel()], axis=1)

colors = ListedColormap(["#444444", "#4c8fd6", "#f0a030", "#f2f2f2"])
fig, axes = plt.subplots(2, 3, figsize=(13, 8.8))
for ax, (name, prox) in zip(axes.flat, GROUPED.items(), strict=True):
    z = np.asarray(prox(jnp.concatenate([plane, arrows])))  # one call: rows are independent
    z, za = z[: len(plane)], z[len(plane) :]
    region = (z[:, 0] != 0) * 1 + (z[:, 1] != 0) * 2  # 0 none, 1 x1, 2 x2, 3 both
    ax.imshow(
        region.reshape(GRID, GRID),
        origin="lower",
        extent=(-2.5, 2.5, -2.5, 2.5),
        cmap=colors,
        vmin=-0.5,
        vmax=3.5,
        interpolation="nearest",
    )
    move = za - np.asarray(arrows)
    ax.quiver(*arrows.T, *move.T, angles="xy", scale_units="xy", scale=1, width=0.004, alpha=0.7)
    ax.set(title=name, xlabel="$x_1$", ylabel="$x_2$")
labels = ["both zero", "only $x_1$ survives", "only $x_2$ survives", "both survive"]
legend = [Patch(color=colors(i), label=s) for i, s in enumerate(labels)]
fig.legend(handles=legend, loc="upper center", ncol=4, fontsize=12, bbox_to_anchor=(0.5, 1.0))
fig.tight_layout(rect=(0, 0, 1, 0.96))
plt.show()
"""
    ),
    md(
        """
## On a weight matrix

The same operators on a random 12 x 8 Dense kernel, where each column (an output unit,
`axis=-1`, the default of the transforms) is a group. For each operator $\\lambda$ is
chosen so that about a third of the weights survive. $\\ell_1$ and $\\ell_{1/2}$ keep
the largest weights wherever they are; the group lasso keeps whole columns (units) and
kills the others; the exclusive lasso keeps a few weights in *every* column, so every
unit stays alive with a sparse set of inputs.
"""
    ),
    code(
        """
# Columns (units) of different strengths.
w = np.asarray(jax.random.normal(jax.random.key(3), (12, 8))) * np.linspace(0.4, 1.6, 8)
TARGET = w.size // 3
MATRIX_OPS = {
    "$\\\\ell_1$": lambda x, lam: so.prox_l1(x, 1.0, lam),
    "$\\\\ell_{1/2}$": lambda x, lam: so.prox_half(x, 1.0, lam),
    "group lasso": lambda x, lam: so.prox_group_lasso(x, 1.0, lam),
    "exclusive lasso": lambda x, lam: so.prox_exclusive(x, 1.0, lam),
    "sparse group lasso, $\\\\alpha$=0.5": lambda x, lam: so.prox_sparse_group_lasso(
        x, 1.0, lam, alpha=0.5
    ),
}


def lam_for(prox, target):
    \"\"\"The smallest lam (by bisection in log space) leaving at most `target` nonzeros.\"\"\"
    f = jax.jit(lambda lam: jnp.count_nonzero(prox(jnp.asarray(w), lam)))
    lo, hi = -6.0, 3.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if f(10.0**mid) <= target else (mid, hi)
    return 10.0**hi


fig, axes = plt.subplots(1, 6, figsize=(17, 3.8))
vmax = np.abs(w).max()
cmap = plt.get_cmap("RdBu_r").copy()
cmap.set_bad("#d9d9d9")  # exact zeros in grey
axes[0].imshow(w, cmap=cmap, vmin=-vmax, vmax=vmax)
axes[0].set(title="weights", xlabel="unit (group)", ylabel="input")
for ax, (name, prox) in zip(axes[1:], MATRIX_OPS.items(), strict=True):
    lam = lam_for(prox, TARGET)
    z = np.asarray(prox(jnp.asarray(w), lam))
    ax.imshow(np.ma.masked_equal(z, 0.0), cmap=cmap, vmin=-vmax, vmax=vmax)
    live_units = int((z != 0).any(axis=0).sum())
    title = f"{name}\\n{np.count_nonzero(z)} nonzeros, {live_units}/8 units"
    ax.set(title=title, xlabel="unit (group)")
for ax in axes:
    ax.set(xticks=[], yticks=[])
fig.tight_layout()
plt.show()
"""
    ),
    md(
        """
## When to use which

| penalty | transform | behaviour | use it when |
|---|---|---|---|
| $\\ell_1$ | `soft_threshold` | convex; shrinks every weight by the same amount | you want the convex baseline. Survivors are biased: fine-tune them with `keep_zeros()` |
| $\\ell_0$ | `hard_threshold` | nonconvex; keep or kill, no shrinkage | you want no bias on the survivors; warm `lam` up, or use `admm(prox_l0, ...)` |
| capped $\\ell_1$ | `capped_l1(rho)` | $\\ell_1$ near 0, flat beyond $1/\\rho$ | a Lipschitz surrogate of $\\ell_0$ (zero-norm pruning with ADMM) |
| $\\ell_{1/2}$, $\\ell_{2/3}$, transformed $\\ell_1$ | `half_threshold`, `two_thirds_threshold`, `transformed_l1(a)` | between $\\ell_0$ and $\\ell_1$: jump at the threshold, little bias | high sparsity with fewer but larger survivors (the quickstart's choice). TL1's `a` slides from $\\ell_0$ (small `a`) to $\\ell_1$ (large `a`) |
| MCP, SCAD | `mcp(gamma)`, `scad(a)` | $\\ell_1$ near 0, no shrinkage of large weights, continuous | nearly unbiased large weights with a stable, continuous map |
| group lasso | `group_lasso(axis=-1)` | whole groups (units, filters) die together | you want a smaller *dense* network that runs faster after `compact` ([notebook 03](03_compact_lenet5.ipynb)) |
| group $\\ell_0$ | `group_hard_threshold(axis=-1)` | keep a whole group unshrunk or kill it | no bias on surviving units. Groups whose norms start alike die together once the threshold passes them: keep `lam` small, and mask out the output layer |
| exclusive lasso | `exclusive_lasso(axis=-1)` | competition within each group; the largest weight of a group always survives | spreading sparse connections across all units, keeping every unit alive |
| combinations | `sparse_group_lasso`, `l1_exclusive`, `tl1_group`, or `optax.chain` of two transforms | structured *and* unstructured sparsity | remove units and thin out the ones that are left |

The group transforms take `axis`: `-1` (default) makes each output unit of a Dense
kernel `(in, out)` or each filter of a Conv kernel `(kh, kw, in, out)` a group; `-2`
makes each input (row / input channel) a group. By default every transform touches only
leaves with `ndim >= 2` (kernels); pass `mask=` to choose (e.g. to spare the classifier).
"""
    ),
]

# --------------------------------------------------------------------------- 03

NB03 = [
    md(
        f"""
# Structured sparsity: kill LeNet-5 filters, compact, run faster

{badge("03_compact_lenet5.ipynb")}

Unstructured zeros scattered across a kernel save nothing unless you have sparse
kernels. Zeroing whole **filters and units** does: the arrays simply get smaller. Here
we train LeNet-5-Caffe (conv 5x5x20, conv 5x5x50, dense 500, dense 10; 431k
parameters) with the **group lasso** (one group per conv filter / dense unit) chained
with $\\ell_{{1/2}}$ thresholding for the weights that survive. Then we look at which
filters died, compact the network and time it.

The full run (3 epochs on all of MNIST) takes about 5 minutes on a 2-core CPU and well
under a minute on a GPU.
"""
    ),
    code(INSTALL),
    code(
        """
import os

QUICK = os.environ.get("SPARSE_OPTAX_QUICK", "0") == "1"

EPOCHS = 1 if QUICK else 3
TRAIN_SUBSET = 2_000 if QUICK else None  # None: all 60,000 training images
BATCH_SIZE = 128
LEARNING_RATE = 0.05  # SGD with momentum 0.9 and cosine decay
LAM_GROUP = 0.1  # group lasso: one group per filter / unit
LAM_HALF = 1e-4  # l1/2 on the individual weights
TIMING_RUNS = 5 if QUICK else 50
SEED = 0
""",
        "parameters",
    ),
    code(
        """
import time

import jax
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx
from IPython.display import Markdown, display
from matplotlib.patches import Rectangle

import sparse_optax as so
from sparse_optax.data import load_dataset
from sparse_optax.models import LeNet5Caffe
from sparse_optax.training import evaluate, train

"""
        + DEVICE
    ),
    code(
        """
ds = load_dataset("mnist")  # images (N, 28, 28, 1), NHWC
x_train, y_train = ds.x_train[:TRAIN_SUBSET], ds.y_train[:TRAIN_SUBSET]
x_test, y_test = ds.x_test, ds.y_test
print(f"{len(x_train):,} training and {len(x_test):,} test images")

model = LeNet5Caffe(rngs=nnx.Rngs(SEED))
LAYERS = ["conv1", "conv2", "fc1", "fc2"]


def kernels(m):
    return {name: np.asarray(getattr(m, name).kernel[...]) for name in LAYERS}


initial = kernels(model)
for name, k in initial.items():
    print(f"{name}: kernel {k.shape}")
"""
    ),
    md(
        """
## A structured penalty

`so.group_lasso(lam, axis=-1)` makes each slice along the last axis of a kernel a group:
a filter of a Conv kernel `(kh, kw, in, out)`, a unit of a Dense kernel `(in, out)`.
Its prox shrinks each group's norm by `lr * lam` and sets groups below that to zero, so
filters die as a whole. `so.half_threshold` then prunes individual weights of the
surviving filters. The `mask` leaves the classifier `fc2` alone: its groups are the 10
classes, which must all survive. Both penalties warm up over the first epoch.
"""
    ),
    code(
        """
steps_per_epoch = len(x_train) // BATCH_SIZE
lr = optax.cosine_decay_schedule(LEARNING_RATE, EPOCHS * steps_per_epoch)


def warmup(value):
    return optax.linear_schedule(0.0, value, steps_per_epoch)


def hidden_kernels(params):
    \"\"\"True for the kernels of conv1, conv2 and fc1; False for biases and fc2.\"\"\"
    return jax.tree_util.tree_map_with_path(
        lambda path, p: p.ndim >= 2 and "fc2" not in jax.tree_util.keystr(path), params
    )


tx = optax.chain(
    optax.sgd(lr, momentum=0.9),
    so.group_lasso(warmup(LAM_GROUP), axis=-1, learning_rate=lr, mask=hidden_kernels),
    so.half_threshold(warmup(LAM_HALF), learning_rate=lr, mask=hidden_kernels),
)


def log(rec, _model):
    live = "-".join(map(str, rec["live"][1:]))
    print(
        f"epoch {rec['epoch']}  loss {rec['train_loss']:.4f}  "
        f"test error {100 * rec['eval_error']:.2f}%  zeros {100 * rec['zero_fraction']:.2f}%  "
        f"live conv1-conv2-fc1-fc2 {live}  ({rec['seconds']:.0f}s)"
    )


result = train(
    model,
    tx,
    x_train,
    y_train,
    epochs=EPOCHS,
    batch_size=BATCH_SIZE,
    seed=SEED,
    eval_data=(x_test, y_test),
    on_epoch=log,
    progress=False,
)
print(f"trained in {result.seconds:.0f}s")
"""
    ),
    md(
        """
## Weights per layer

Histograms of each layer's weights at initialisation (grey) and after training (colour),
on a log scale. The spike at 0 holds the exact zeros: whole dead filters and units plus
the weights pruned by $\\ell_{1/2}$.
"""
    ),
    code(
        """
trained = kernels(model)
fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
for i, (ax, name) in enumerate(zip(axes, LAYERS, strict=True)):
    k0, k = initial[name].ravel(), trained[name].ravel()
    bins = np.linspace(-1, 1, 101) * max(np.abs(k0).max(), np.abs(k).max())
    ax.hist(k0, bins=bins, color="0.6", alpha=0.6, label="initial")
    ax.hist(k, bins=bins, color=f"C{i}", alpha=0.8, label="trained")
    title = f"{name}: {100 * np.mean(k == 0):.1f}% exactly zero"
    ax.set(yscale="log", xlabel="weight", title=title)
    ax.legend()
axes[0].set_ylabel("count")
fig.tight_layout()
plt.show()
"""
    ),
    md(
        """
## Which conv1 filters died

The 20 first-layer filters (5 x 5 pixels) before and after training. A filter framed in
red has all its weights exactly zero: it is dead and will be removed. Each filter is
shown on its own colour scale.
"""
    ),
    code(
        """
def show_filters(axes_row, k, label):
    dead = ~(k != 0).any(axis=(0, 1, 2))
    for j, ax in enumerate(axes_row):
        f = k[:, :, 0, j]
        m = np.abs(f).max() or 1.0
        ax.imshow(f, cmap="RdBu_r", vmin=-m, vmax=m)
        ax.set(xticks=[], yticks=[])
        if dead[j]:
            ax.add_patch(Rectangle((-0.5, -0.5), 5, 5, fill=False, ec="red", lw=3))
    axes_row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=12)
    return int(dead.sum())


n1 = initial["conv1"].shape[-1]
fig, axes = plt.subplots(2, n1, figsize=(17, 2.4))
show_filters(axes[0], initial["conv1"], "initial")
dead = show_filters(axes[1], trained["conv1"], "trained")
fig.suptitle(f"conv1 filters: {dead} of {n1} dead (red)")
fig.tight_layout()
plt.show()

for name in ["conv1", "conv2", "fc1"]:
    k = trained[name]
    alive = (k.reshape(-1, k.shape[-1]) != 0).any(axis=0)
    print(f"{name}: {alive.sum()} of {alive.size} filters/units alive")
"""
    ),
    md(
        """
## Compact

`so.compact` removes the dead filters and units (and the matching input channels of the
next layer, including the rows of `fc1` that read a removed `conv2` filter through the
flatten), then verifies that the new model computes the same outputs.
"""
    ),
    code(
        """
small, report = so.compact(model, x_test[:256])
print(report)
print("new widths:", small.features)
"""
    ),
    md(
        """
## Inference speed

Both models are jitted and timed on batches of 256 images (median of several runs).
The trained model still has its dense arrays, zeros included, so it costs as much as
the original network; the compacted one does less work. Expect less speed-up than the
FLOP count suggests: at this size fixed costs (memory traffic, pooling, dispatch) weigh
a lot. Timings on a shared CPU are noisy; on a GPU both models are far faster and
LeNet-5 is too small to keep it busy.
"""
    ),
    code(
        """
def median_seconds(m, x, runs):
    graphdef, state = nnx.split(m)
    forward = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    forward(state, x).block_until_ready()  # compile
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        forward(state, x).block_until_ready()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


batch = x_test[:256]
t_before = median_seconds(model, batch, TIMING_RUNS)
t_after = median_seconds(small, batch[..., report.kept_inputs], TIMING_RUNS)
before = evaluate(model, x_test, y_test)
after = evaluate(small, x_test[..., report.kept_inputs], y_test)

fig, ax = plt.subplots(figsize=(6, 2.4))
ax.barh(["compacted", "trained (dense)"], [1e3 * t_after, 1e3 * t_before], color=["C2", "C7"])
ax.set(xlabel=f"ms per batch of 256 ({jax.default_backend()})", title="jitted inference")
fig.tight_layout()
plt.show()

err_before, err_after = 100 * before["error"], 100 * after["error"]
widths = "-".join(map(str, small.features))
smaller = report.params_before / report.params_after
fewer_flops = report.flops_before / report.flops_after
table = f\"\"\"
| | trained (dense arrays) | compacted |
|---|---:|---:|
| test error | {err_before:.2f}% | {err_after:.2f}% |
| widths (conv1-conv2-fc1) | 20-50-500 | {widths} |
| parameters | {report.params_before:,} | {report.params_after:,} |
| MFLOPs per image | {report.flops_before / 1e6:.2f} | {report.flops_after / 1e6:.2f} |
| ms per batch of 256 | {1e3 * t_before:.2f} | {1e3 * t_after:.2f} |

**{smaller:.1f}x smaller, {fewer_flops:.1f}x fewer FLOPs, {t_before / t_after:.1f}x faster**
here, with the same predictions.
\"\"\"
display(Markdown(table))
"""
    ),
    md(
        """
## Takeaways

* Structured penalties (`group_lasso`, `sparse_group_lasso`, `tl1_group`) remove whole
  units, which `compact` turns into smaller dense arrays: real savings on any hardware,
  no sparse kernels needed.
* Raise `LAM_GROUP` for a smaller network, lower it for accuracy; chaining an
  elementwise penalty adds weight-level sparsity inside the surviving filters.
* `report.apply_to(opt_state)` compacts the optimizer state too, to keep fine-tuning
  the small model (with `so.keep_zeros()` to keep its zeros).
"""
    ),
]

NOTEBOOKS = {
    "01_quickstart.ipynb": NB01,
    "02_penalty_gallery.ipynb": NB02,
    "03_compact_lenet5.ipynb": NB03,
}


def build(name: str, cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    for i, cell in enumerate(nb.cells):
        cell.id = f"{name[:2]}-{i:02d}"  # stable ids: no churn in diffs on rebuilds
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["colab"] = {"name": name, "provenance": []}
    return nb


def keep_outputs(nb: nbformat.NotebookNode, path: Path) -> bool:
    """Copies the outputs of ``path`` into ``nb`` if both have the same code cells."""
    if not path.exists():
        return False
    old = nbformat.read(path, as_version=4)
    old_code = [c for c in old.cells if c.cell_type == "code"]
    new_code = [c for c in nb.cells if c.cell_type == "code"]
    if [c.source for c in old_code] != [c.source for c in new_code]:
        return False
    for o, n in zip(old_code, new_code, strict=True):
        n.outputs, n.execution_count = o.outputs, o.execution_count
    return True


def shrink_images(nb: nbformat.NotebookNode) -> None:
    """Re-encodes RGB(A) PNG outputs with a 256-colour palette: ~3x smaller, same look."""
    import base64
    import io

    from PIL import Image

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" not in data:
                continue
            im = Image.open(io.BytesIO(base64.b64decode(data["image/png"])))
            if im.mode == "P":
                continue
            pal = im.convert("RGB").quantize(
                256, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
            )
            buf = io.BytesIO()
            pal.save(buf, "PNG", optimize=True)
            data["image/png"] = base64.b64encode(buf.getvalue()).decode("ascii")


def execute(nb: nbformat.NotebookNode, timeout: int) -> None:
    from nbclient import NotebookClient

    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    ).execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # timestamps: noise in diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("only", nargs="*", help="build only notebooks whose name contains these")
    ap.add_argument("--execute", action="store_true", help="run in full mode, save outputs")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = ap.parse_args()
    if args.execute and os.environ.get("SPARSE_OPTAX_QUICK", "0") == "1":
        sys.exit("unset SPARSE_OPTAX_QUICK: the committed outputs come from full runs")
    for name, cells in NOTEBOOKS.items():
        if args.only and not any(s in name for s in args.only):
            continue
        nb = build(name, cells)
        nbformat.validate(nb)
        if args.execute:
            t0 = time.perf_counter()
            execute(nb, args.timeout)
            print(f"{name}: executed in {time.perf_counter() - t0:.0f}s")
        elif not keep_outputs(nb, HERE / name):
            print(f"{name}: code changed, outputs dropped; rerun with --execute {name[:2]}")
        shrink_images(nb)
        nbformat.write(nb, HERE / name)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
