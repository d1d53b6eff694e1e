r"""Optax transforms for proximal stochastic gradient training and ADMM pruning.

Proximal transforms
-------------------
``optax.chain(optax.sgd(lr), sparse_optax.half_threshold(lam))`` trains with proximal
stochastic gradient steps, the algorithm of the source papers (Tang et al. 2023 for
:math:`\ell_{1/2}`, Ma et al. 2019 for transformed :math:`\ell_1`, Ma & Niu 2018 for
:math:`\ell_{1,1}+\ell_{1,2}`, Liu 2023 for the zero-norm surrogate), with nothing else
to call.

An optax transform returns *updates*, not parameters. For incoming updates :math:`u`
(already scaled by the optimizer's learning rate), parameters :math:`p` and step count
:math:`k` (starting at 0, as for optax's own schedules), a proximal transform returns

.. math::

    \operatorname{prox}(p + u,\ s_k,\ \lambda_k) - p,

so that ``optax.apply_updates`` yields :math:`\operatorname{prox}(p + u, s_k, \lambda_k)`.
:math:`s_k` comes from ``learning_rate`` and :math:`\lambda_k` from ``lam``; each is a
float or an optax schedule (a callable of the step count).

* ``learning_rate`` defaults to ``1.0``: ``lam`` is then the threshold strength applied
  at every step, whatever the optimizer's step size.
* Passing the optimizer's own learning rate (or the same schedule) gives the textbook
  proximal gradient step :math:`p \leftarrow \operatorname{prox}(p - \eta\nabla f(p),
  \eta, \lambda)`, i.e. the penalty :math:`\lambda R` is weighted like the loss.

Exactness. Zeros produced by the prox are exactly zero after ``apply_updates``
(:math:`p + (0 - p) = 0` in floating point). Nonzero values are reproduced exactly when
:math:`p/2 \le z \le 2p` (then :math:`z - p` is exact, Sterbenz's lemma), which covers
ordinary small steps; otherwise ``apply_updates`` can be off by at most one unit in the
last place of the update :math:`z - p` (so a zero is never lost, and a nonzero is off by
at most two ulps of :math:`\max(|p|, |z|)`). No update can do better in general:
``p + d`` can only land on the floating-point grid around :math:`d`.

Masks. ``mask`` follows :func:`optax.masked`: a pytree of Python bools with the
structure of (or a prefix of) the parameters, or a callable that maps the parameters
to one. With the default ``mask=None`` the prox is applied to every leaf with
``ndim >= 2`` (Dense kernels, Conv filters, embeddings) and biases, norm scales and
other 0-/1-D leaves are left alone. Unselected leaves get the incoming update back
bit for bit.

With :func:`optax.inject_hyperparams`, pass ``static_args=("axis", "mask")`` for the
group transforms (``axis`` must stay a Python int), and ``static_args="mask"`` when
``mask`` is a callable (otherwise it would be taken for a schedule). For
:func:`proximal` itself, ``prox_fn`` is a callable too:
``optax.inject_hyperparams(proximal, static_args="prox_fn")(prox_fn=prox_tl1, lam=0.1, a=2.0)``.

ADMM
----
:func:`admm` implements the ADMM splitting used for zero-norm pruning (Liu 2023); see its
docstring for the full recipe. :func:`admm_params` extracts the sparse model to deploy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sparse_optax._checks import (
    check_greater,
    check_nonnegative,
    check_positive,
    check_unit_interval,
    is_concrete,
)
from sparse_optax.prox import (
    prox_capped_l1,
    prox_exclusive,
    prox_group_l0,
    prox_group_lasso,
    prox_half,
    prox_l0,
    prox_l1,
    prox_l1_exclusive,
    prox_mcp,
    prox_scad,
    prox_sparse_group_lasso,
    prox_tl1,
    prox_tl1_group,
    prox_two_thirds,
)

Array = jax.Array
Params = Any
ScalarOrSchedule = float | jax.Array | Callable[[jax.Array], jax.Array]
MaskOrFn = Any | Callable[[Params], Any] | None
ProxFn = Callable[..., jax.Array]

__all__ = [
    "ProximalState",
    "AdmmState",
    "SparsityStats",
    "proximal",
    "soft_threshold",
    "hard_threshold",
    "half_threshold",
    "two_thirds_threshold",
    "transformed_l1",
    "capped_l1",
    "mcp",
    "scad",
    "group_lasso",
    "group_hard_threshold",
    "exclusive_lasso",
    "sparse_group_lasso",
    "l1_exclusive",
    "tl1_group",
    "admm",
    "admm_params",
    "sparsity",
]


# --------------------------------------------------------------------------- helpers


class ProximalState(NamedTuple):
    """State of a proximal transform: the number of updates applied so far."""

    count: jax.Array


def _check_hyper_or_schedule(value: Any, name: str) -> None:
    if callable(value):
        return
    check_nonnegative(value, name)


def _check_axis(axis: Any) -> None:
    # A traced or array axis (what optax.inject_hyperparams makes of an int) cannot
    # pick the reduction axes, which are part of the program's shape.
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise TypeError(
            f"axis must be a Python int, got {type(axis).__name__}. With "
            "optax.inject_hyperparams, pass static_args=('axis', 'mask')."
        )


def _value(h: ScalarOrSchedule, count: jax.Array) -> Any:
    return h(count) if callable(h) else h


def _apply(p: jax.Array, u: jax.Array) -> jax.Array:
    # Exactly what optax.apply_updates computes for one leaf.
    return jnp.asarray(p + u).astype(jnp.asarray(p).dtype)


def _default_mask(params: Params) -> Params:
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def _mask_leaves(mask: MaskOrFn, params: Params, treedef: Any) -> list[bool]:
    """One Python bool per leaf of ``treedef`` (the parameters' structure)."""
    if mask is None:
        tree = _default_mask(params)
    else:
        tree = mask(params) if callable(mask) else mask
    # A mask may be a prefix of the parameter tree (optax.masked's convention): a
    # bool at an inner node covers that whole subtree.
    full = jax.tree.map(lambda m, sub: jax.tree.map(lambda _: m, sub), tree, params)
    out = []
    for m in treedef.flatten_up_to(full):
        if not is_concrete(m) or (isinstance(m, jax.Array | np.ndarray) and m.ndim != 0):
            raise TypeError(
                "mask leaves must be Python bools (one per parameter leaf), as for "
                f"optax.masked; got {type(m).__name__}."
            )
        out.append(bool(m))
    return out


def _need_params(params: Params | None, name: str) -> None:
    if params is None:
        raise ValueError(
            f"{name} needs the current parameters: call "
            "`tx.update(updates, state, params)` (optax.apply_gradients, "
            "flax TrainState and nnx.Optimizer do this for you)."
        )


# --------------------------------------------------------------------------- proximal


def proximal(
    prox_fn: ProxFn,
    lam: ScalarOrSchedule,
    *,
    learning_rate: ScalarOrSchedule = 1.0,
    mask: MaskOrFn = None,
    **prox_kwargs: Any,
) -> optax.GradientTransformation:
    r"""A proximal step after any optimizer, for any prox with the catalog's signature.

    .. math::

        d_k = \operatorname{prox}(p_k + u_k,\ s_k,\ \lambda_k) - p_k,
        \qquad p_{k+1} = p_k + d_k = \operatorname{prox}(p_k + u_k, s_k, \lambda_k),

    where :math:`u_k` are the incoming updates, :math:`s_k` is ``learning_rate`` and
    :math:`\lambda_k` is ``lam`` at step count :math:`k` (0 for the first update).
    Chained after ``optax.sgd(eta)`` with ``learning_rate=eta`` this is the proximal
    stochastic gradient method :math:`p \leftarrow \operatorname{prox}(p - \eta g,
    \eta, \lambda)`. See the module docstring for masks and exactness.

    Args:
      prox_fn: ``prox_fn(x, step, lam, **prox_kwargs)``, e.g. :func:`sparse_optax.prox_l1`.
      lam: penalty strength, a float or a schedule of the step count.
      learning_rate: the ``step`` passed to ``prox_fn``, a float or a schedule;
        defaults to 1.0.
      mask: pytree of bools or callable of the params; default: leaves with ``ndim >= 2``.
      **prox_kwargs: further hyperparameters of ``prox_fn`` (``a``, ``axis``, ...).

    Returns:
      An ``optax.GradientTransformation`` whose ``update`` requires ``params``.
    """
    if not callable(prox_fn):
        raise TypeError(f"prox_fn must be callable, got {type(prox_fn).__name__}.")
    # optax.inject_hyperparams binds this signature and passes the var-keyword
    # arguments back as a single keyword argument named after them.
    if set(prox_kwargs) == {"prox_kwargs"} and isinstance(prox_kwargs["prox_kwargs"], dict):
        prox_kwargs = prox_kwargs["prox_kwargs"]
    _check_hyper_or_schedule(lam, "lam")
    _check_hyper_or_schedule(learning_rate, "learning_rate")

    def init_fn(params: Params) -> ProximalState:
        del params
        return ProximalState(count=jnp.zeros([], jnp.int32))

    def update_fn(
        updates: optax.Updates, state: ProximalState, params: Params | None = None
    ) -> tuple[optax.Updates, ProximalState]:
        _need_params(params, "a proximal transform")
        step = _value(learning_rate, state.count)
        lam_k = _value(lam, state.count)
        u_leaves, treedef = jax.tree.flatten(updates)
        p_leaves = treedef.flatten_up_to(params)
        m_leaves = _mask_leaves(mask, params, treedef)
        out = []
        for u, p, m in zip(u_leaves, p_leaves, m_leaves, strict=True):
            if not m:
                out.append(u)
                continue
            z = prox_fn(_apply(p, u), step, lam_k, **prox_kwargs)
            # z - p is exact when z is within a factor 2 of p, and p + (0 - p) is 0.
            out.append((z - p).astype(jnp.asarray(u).dtype))
        return treedef.unflatten(out), ProximalState(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)


_COMMON_ARGS = """
    Args:
      lam: penalty strength :math:`\\lambda`, a float or a schedule of the step count.
      learning_rate: the prox step :math:`s_k` (float or schedule, default 1.0). Pass the
        optimizer's learning rate for the textbook proximal gradient step.
      mask: pytree of bools or callable of the params; default: leaves with ``ndim >= 2``.

    Returns:
      An ``optax.GradientTransformation``; see :func:`proximal` for the update.
"""


def _doc(text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        f.__doc__ = text + _COMMON_ARGS
        return f

    return deco


@_doc(
    r"""Proximal step for :math:`\lambda\|p\|_1` (soft thresholding, :func:`prox_l1`).

    .. math:: p \leftarrow \operatorname{sign}(x)\max(|x| - s_k\lambda_k, 0),\quad x = p + u.
"""
)
def soft_threshold(
    lam: ScalarOrSchedule, *, learning_rate: ScalarOrSchedule = 1.0, mask: MaskOrFn = None
) -> optax.GradientTransformation:
    return proximal(prox_l1, lam, learning_rate=learning_rate, mask=mask)


@_doc(
    r"""Proximal step for :math:`\lambda\|p\|_0` (hard thresholding, :func:`prox_l0`).

    .. math:: p \leftarrow x\,[\,|x| > \sqrt{2 s_k\lambda_k}\,],\quad x = p + u.
"""
)
def hard_threshold(
    lam: ScalarOrSchedule, *, learning_rate: ScalarOrSchedule = 1.0, mask: MaskOrFn = None
) -> optax.GradientTransformation:
    return proximal(prox_l0, lam, learning_rate=learning_rate, mask=mask)


@_doc(
    r"""Proximal step for :math:`\lambda\sum|p_i|^{1/2}` (half thresholding, :func:`prox_half`).

    .. math:: p \leftarrow \operatorname{prox}_{s_k\lambda_k|\cdot|^{1/2}}(p + u).

    Reference: Tang, Niu, Miao & Zhang, Pattern Recognition 136 (2023), after Xu et al.,
    IEEE TNNLS 23 (2012).
"""
)
def half_threshold(
    lam: ScalarOrSchedule, *, learning_rate: ScalarOrSchedule = 1.0, mask: MaskOrFn = None
) -> optax.GradientTransformation:
    return proximal(prox_half, lam, learning_rate=learning_rate, mask=mask)


@_doc(
    r"""Proximal step for :math:`\lambda\sum|p_i|^{2/3}` (:func:`prox_two_thirds`).

    .. math:: p \leftarrow \operatorname{prox}_{s_k\lambda_k|\cdot|^{2/3}}(p + u).

    Reference: Cao, Sun & Xu, J. Vis. Commun. Image R. 24 (2013).
"""
)
def two_thirds_threshold(
    lam: ScalarOrSchedule, *, learning_rate: ScalarOrSchedule = 1.0, mask: MaskOrFn = None
) -> optax.GradientTransformation:
    return proximal(prox_two_thirds, lam, learning_rate=learning_rate, mask=mask)


@_doc(
    r"""Proximal step for transformed :math:`\ell_1`, :math:`\lambda\sum(a+1)|p_i|/(a+|p_i|)`.

    .. math:: p \leftarrow \operatorname{prox}_{s_k\lambda_k\rho_a}(p + u)\quad
        (:func:`prox_tl1`, ``a > 0``).

    Reference: Ma, Miao, Niu & Zhang, Neural Networks 119 (2019).
"""
)
def transformed_l1(
    lam: ScalarOrSchedule,
    a: float = 1.0,
    *,
    learning_rate: ScalarOrSchedule = 1.0,
    mask: MaskOrFn = None,
) -> optax.GradientTransformation:
    check_positive(a, "a")
    return proximal(prox_tl1, lam, learning_rate=learning_rate, mask=mask, a=a)


@_doc(
    r"""Proximal step for capped :math:`\ell_1`, :math:`\lambda\sum\min(1, \rho|p_i|)`.

    .. math:: p \leftarrow \operatorname{prox}_{s_k\lambda_k\min(1,\rho|\cdot|)}(p + u)\quad
        (:func:`prox_capped_l1`, ``rho > 0``).

    The zero-norm surrogate of Liu, Operations Research and Management Science 32 (2023).
"""
)
def capped_l1(
    lam: ScalarOrSchedule,
    rho: float,
    *,
    learning_rate: ScalarOrSchedule = 1.0,
    mask: MaskOrFn = None,
) -> optax.GradientTransformation:
    check_positive(rho, "rho")
    return proximal(prox_capped_l1, lam, learning_rate=learning_rate, mask=mask, rho=rho)


@_doc(
    r"""Proximal step for the minimax concave penalty (:func:`prox_mcp`, ``gamma > 1``).

    .. math:: p \leftarrow \operatorname*{argmin}_z \tfrac12\|z - (p+u)\|^2
        + s_k\sum_i P_{\lambda_k,\gamma}(z_i).

    Reference: Zhang, Ann. Statist. 38 (2010).
"""
)
def mcp(
    lam: ScalarOrSchedule,
    gamma: float = 3.0,
    *,
    learning_rate: ScalarOrSchedule = 1.0,
    mask: MaskOrFn = None,
) -> optax.GradientTransformation:
    check_greater(gamma, "gamma", 1.0)
    return proximal(prox_mcp, lam, learning_rate=learning_rate, mask=mask, gamma=gamma)


@_doc(
    r"""Proximal step for the SCAD penalty (:func:`prox_scad`, ``a > 2``).

    .. math:: p \leftarrow \operatorname*{argmin}_z \tfrac12\|z - (p+u)\|^2
        + s_k\sum_i P_{\lambda_k,a}(z_i).

    Reference: Fan & Li, JASA 96 (2001).
"""
)
def scad(
    lam: ScalarOrSchedule,
    a: float = 3.7,
    *,
    learning_rate: ScalarOrSchedule = 1.0,
    mask: MaskOrFn = None,
) -> optax.GradientTransformation:
    check_greater(a, "a", 2.0)
    return proximal(prox_scad, lam, learning_rate=learning_rate, mask=mask, a=a)


@_doc(
    r"""Proximal step for the group lasso :math:`\lambda\sum_g\|p_g\|_2` (:func:`prox_group_lasso`).

    .. math:: p_g \leftarrow x_g\max(1 - s_k\lambda_k/\|x_g\|_2, 0),\quad x = p + u.

    Group :math:`g` is the slice with index :math:`g` along ``axis`` (default -1: output
    units of Dense kernels, filters of Conv kernels), so whole units are removed.
    Reference: Yuan & Lin, JRSS-B 68 (2006).
"""
)
def group_lasso(
    lam: ScalarOrSchedule,
    axis: int = -1,
    *,
    learning_rate: ScalarOrSchedule = 1.0,
    mask: MaskOrFn = None,
) -> optax.GradientTransformation:
    _check_axis(axis)
    return proximal(prox_group_lasso, lam, learning_rate=learning_rate, mask=mask, axis=axis)


@_doc(
    r"""Proximal step for the group :math:`\ell_0` penalty :math:`\lambda\,\#\{g : p_g \ne 0\}`.

    .. math:: p_g \leftarrow x_g\,[\|x_g\|_2 > \sqrt{2 s_k\lambda_k}],\quad x = p + u
        \quad (:func:`prox_group_l0`).

    Whole units (default ``axis=-1``) or input rows (``axis=-2``) are removed, and the
    kept ones are not shrunk. Reference: Louizos, Welling & Kingma, ICLR 2018.
"""
)
def group_hard_threshold(
    lam: ScalarOrSchedule,
    axis: int = -1,
    *,
    learning_rate: ScalarOrSchedule = 1.0,
    mask: MaskOrFn = None,
) -> optax.GradientTransformation:
    _check_axis(axis)
    return proximal(prox_group_l0, lam, learning_rate=learning_rate, mask=mask, axis=axis)


@_doc(
    r"""Proximal step for the exclusive lasso :math:`\tfrac\lambda2\sum_g\|p_g\|_1^2`.

    .. math:: p \leftarrow \operatorname{prox}_{s_k\lambda_k\frac12\sum_g\|\cdot_g\|_1^2}(p + u)
        \quad (:func:`prox_exclusive`).

    Reference: Kong et al., NeurIPS 2014; Yoon & Hwang, ICML 2017.
"""
)
def exclusive_lasso(
    lam: ScalarOrSchedule,
    axis: int = -1,
    *,
    learning_rate: ScalarOrSchedule = 1.0,
    mask: MaskOrFn = None,
) -> optax.GradientTransformation:
    _check_axis(axis)
    return proximal(prox_exclusive, lam, learning_rate=learning_rate, mask=mask, axis=axis)


@_doc(
    r"""Proximal step for the sparse group lasso (:func:`prox_sparse_group_lasso`).

    .. math:: p \leftarrow \operatorname{prox}_{s_k\lambda_k(\alpha\|\cdot\|_1
        + (1-\alpha)\sum_g\|\cdot_g\|_2)}(p + u),\quad \alpha\in[0,1].

    Reference: Simon, Friedman, Hastie & Tibshirani, JCGS 22 (2013).
"""
)
def sparse_group_lasso(
    lam: ScalarOrSchedule,
    alpha: float,
    axis: int = -1,
    *,
    learning_rate: ScalarOrSchedule = 1.0,
    mask: MaskOrFn = None,
) -> optax.GradientTransformation:
    check_unit_interval(alpha, "alpha")
    _check_axis(axis)
    return proximal(
        prox_sparse_group_lasso,
        lam,
        learning_rate=learning_rate,
        mask=mask,
        alpha=alpha,
        axis=axis,
    )


@_doc(
    r"""Proximal step for :math:`\lambda(\mu\|p\|_1 + (1-\mu)\tfrac12\sum_g\|p_g\|_1^2)`.

    .. math:: p \leftarrow \operatorname{prox}(p + u)\quad (:func:`prox_l1_exclusive`,
        \ \mu\in[0,1]).

    Reference: Ma & Niu, ICDM Workshops 2018.
"""
)
def l1_exclusive(
    lam: ScalarOrSchedule,
    mu: float,
    axis: int = -1,
    *,
    learning_rate: ScalarOrSchedule = 1.0,
    mask: MaskOrFn = None,
) -> optax.GradientTransformation:
    check_unit_interval(mu, "mu")
    _check_axis(axis)
    return proximal(
        prox_l1_exclusive, lam, learning_rate=learning_rate, mask=mask, mu=mu, axis=axis
    )


@_doc(
    r"""Integrated transformed :math:`\ell_1` plus group lasso (:func:`prox_tl1_group`).

    .. math:: p \leftarrow \operatorname{prox}(p + u)\ \text{for}\
        \lambda(\alpha\sum_i\rho_a(p_i) + (1-\alpha)\sum_g\|p_g\|_2),

    evaluated by the splitting of Ma, Miao, Niu & Zhang, Neural Networks 119 (2019)
    (group shrinkage, then TL1), which is exact only for ``alpha`` 0 or 1.
"""
)
def tl1_group(
    lam: ScalarOrSchedule,
    a: float,
    alpha: float,
    axis: int = -1,
    *,
    learning_rate: ScalarOrSchedule = 1.0,
    mask: MaskOrFn = None,
) -> optax.GradientTransformation:
    check_positive(a, "a")
    check_unit_interval(alpha, "alpha")
    _check_axis(axis)
    return proximal(
        prox_tl1_group,
        lam,
        learning_rate=learning_rate,
        mask=mask,
        a=a,
        alpha=alpha,
        axis=axis,
    )


# --------------------------------------------------------------------------- ADMM


def keep_zeros(*, mask: MaskOrFn = None) -> optax.GradientTransformation:
    """Zeroes the updates of parameters that are exactly zero: pruned weights stay pruned.

    Chain it last, after the optimizer, to fine-tune a sparse model on its support
    (``optax.chain(optax.adam(lr), sparse_optax.keep_zeros())``): an entry that is 0
    gets update 0, so ``apply_updates`` leaves it at exactly 0, and the sparsity
    pattern cannot grow back. Stateless; ``mask`` selects the leaves as for
    :func:`proximal` (default: leaves with ``ndim >= 2``).
    """

    def update_fn(
        updates: optax.Updates, state: optax.EmptyState, params: Params | None = None
    ) -> tuple[optax.Updates, optax.EmptyState]:
        _need_params(params, "keep_zeros")
        u_leaves, treedef = jax.tree.flatten(updates)
        p_leaves = treedef.flatten_up_to(params)
        m_leaves = _mask_leaves(mask, params, treedef)
        out = [
            jnp.where(p == 0, jnp.zeros_like(u), u) if m else u
            for u, p, m in zip(u_leaves, p_leaves, m_leaves, strict=True)
        ]
        return treedef.unflatten(out), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


class AdmmState(NamedTuple):
    """State of :func:`admm`.

    ``z`` (the sparse copy) and ``u`` (the scaled dual) have the structure of the
    parameters, with ``optax.MaskedNode()`` in place of the leaves the mask leaves out.
    """

    z: Params
    u: Params
    count: jax.Array


def _is_masked(x: Any) -> bool:
    return isinstance(x, optax.MaskedNode)


def admm(
    prox_fn: ProxFn,
    lam: ScalarOrSchedule,
    rho: ScalarOrSchedule,
    *,
    update_every: int = 1,
    mask: MaskOrFn = None,
    **prox_kwargs: Any,
) -> optax.GradientTransformation:
    r"""ADMM splitting for a (possibly nonconvex) penalty, as in zero-norm pruning.

    Solves :math:`\min_{p,z} f(p) + \lambda R(z)` subject to :math:`p = z` with the scaled
    augmented Lagrangian :math:`f(p) + \lambda R(z) + \tfrac\rho2\|p - z + u\|^2`. Placed
    *before* the optimizer in a chain, it adds the gradient of the coupling term,

    .. math:: g \leftarrow g + \rho\,(p - z + u),

    so the optimizer's steps are the :math:`p`-minimization, and at every step count
    :math:`k > 0` that is a multiple of ``update_every`` it first updates

    .. math:: z \leftarrow \operatorname{prox}(p + u,\ 1/\rho,\ \lambda),\qquad
        u \leftarrow u + p - z.

    At ``init``, :math:`z = \operatorname{prox}(p_0, 1/\rho, \lambda)` and :math:`u = 0`.
    ``lam`` and ``rho`` may be schedules of the step count. ``u`` is the scaled dual
    :math:`y/\rho`, so when ``rho`` changes it is rescaled, :math:`u \leftarrow
    u\,\rho_{k-1}/\rho_k`, keeping the dual :math:`y` unchanged (Boyd et al.,
    "Distributed optimization and statistical learning via ADMM", 2011, sec. 3.4.1).
    With ``prox_fn=prox_l0`` the :math:`z`-step keeps the entries with
    :math:`|p + u| > \sqrt{2\lambda/\rho}`; ``prox_capped_l1`` gives the Lipschitz
    surrogate of Liu, Bi & Pan (J. Global Optim. 72, 2018) used by Liu
    (Operations Research and Management Science 32, 2023).

    Recipe::

        tx = optax.chain(sparse_optax.admm(sparse_optax.prox_l0, lam, rho), optax.adam(1e-3))
        state = tx.init(params)
        ...  # train as usual: updates, state = tx.update(grads, state, params)
        sparse = sparse_optax.admm_params(state, params)  # z: the model to deploy
        # Optional fine-tuning on the support of z, keeping zeros exactly zero:
        tx_ft = optax.chain(optax.adam(1e-4), sparse_optax.keep_zeros())

    A prox hyperparameter named like one of ``admm``'s own (capped-l1's ``rho``) is bound
    first: ``admm(functools.partial(prox_capped_l1, rho=50.0), lam, rho_admm)``.

    Args:
      prox_fn: ``prox_fn(x, step, lam, **prox_kwargs)``, e.g. :func:`sparse_optax.prox_l0`.
      lam: penalty strength (float or schedule).
      rho: ADMM penalty parameter :math:`\rho > 0` (float or schedule).
      update_every: number of optimizer steps between :math:`z, u` updates.
      mask: pytree of bools or callable of the params; default: leaves with ``ndim >= 2``.
      **prox_kwargs: further hyperparameters of ``prox_fn``.

    Returns:
      An ``optax.GradientTransformation`` with state :class:`AdmmState`.
    """
    if not callable(prox_fn):
        raise TypeError(f"prox_fn must be callable, got {type(prox_fn).__name__}.")
    _check_hyper_or_schedule(lam, "lam")
    if not callable(rho):
        check_positive(rho, "rho")
    if not isinstance(update_every, int) or isinstance(update_every, bool) or update_every < 1:
        raise ValueError(f"update_every must be a positive int, got {update_every!r}.")

    def _z_of(x: jax.Array, rho_k: Any, lam_k: Any) -> jax.Array:
        return prox_fn(x, 1.0 / jnp.asarray(rho_k, jnp.float32), lam_k, **prox_kwargs)

    def init_fn(params: Params) -> AdmmState:
        p_leaves, treedef = jax.tree.flatten(params)
        m_leaves = _mask_leaves(mask, params, treedef)
        count = jnp.zeros([], jnp.int32)
        rho0, lam0 = _value(rho, count), _value(lam, count)
        z = [
            _z_of(p, rho0, lam0) if m else optax.MaskedNode()
            for p, m in zip(p_leaves, m_leaves, strict=True)
        ]
        u = [
            jnp.zeros_like(p) if m else optax.MaskedNode()
            for p, m in zip(p_leaves, m_leaves, strict=True)
        ]
        return AdmmState(z=treedef.unflatten(z), u=treedef.unflatten(u), count=count)

    def update_fn(
        updates: optax.Updates, state: AdmmState, params: Params | None = None
    ) -> tuple[optax.Updates, AdmmState]:
        _need_params(params, "admm")
        g_leaves, treedef = jax.tree.flatten(updates)
        p_leaves = treedef.flatten_up_to(params)
        z_leaves = treedef.flatten_up_to(state.z)
        u_leaves = treedef.flatten_up_to(state.u)
        sel = [i for i, z in enumerate(z_leaves) if not _is_masked(z)]
        count = state.count
        rho_k, lam_k = _value(rho, count), _value(lam, count)
        if callable(rho):
            # u is y / rho: a new rho rescales it so that the dual y stays put.
            ratio = _value(rho, jnp.maximum(count - 1, 0)) / rho_k
            u_leaves = [u if _is_masked(u) else (u * ratio).astype(u.dtype) for u in u_leaves]

        def new_zu(zu: tuple[list, list]) -> tuple[list, list]:
            del zu
            zs, us = [], []
            for i in sel:
                p, u = p_leaves[i], u_leaves[i]
                z = _z_of(p + u, rho_k, lam_k)
                zs.append(z)
                us.append(u + p - z)
            return zs, us

        zu = ([z_leaves[i] for i in sel], [u_leaves[i] for i in sel])
        due = (count > 0) & (count % update_every == 0)
        # lax.cond so that the prox is evaluated only on the steps that need it.
        zs, us = jax.lax.cond(due, new_zu, lambda zu: zu, zu)

        out = list(g_leaves)
        new_z, new_u = list(z_leaves), list(u_leaves)
        for j, i in enumerate(sel):
            g, p = g_leaves[i], p_leaves[i]
            coupling = jnp.asarray(rho_k, p.dtype) * (p - zs[j] + us[j])
            out[i] = (g + coupling).astype(jnp.asarray(g).dtype)
            new_z[i], new_u[i] = zs[j], us[j]
        new_state = AdmmState(
            z=treedef.unflatten(new_z),
            u=treedef.unflatten(new_u),
            count=optax.safe_increment(count),
        )
        return treedef.unflatten(out), new_state

    return optax.GradientTransformation(init_fn, update_fn)


def admm_params(opt_state: Any, params: Params) -> Params:
    """The sparse model of an :func:`admm` run: ``params`` with ``z`` on ADMM's leaves.

    Args:
      opt_state: the state of a chain (or any pytree) that holds exactly one
        :class:`AdmmState`, or that state itself.
      params: the current parameters; the leaves that ADMM's mask leaves out are taken
        from here unchanged.

    Returns:
      A pytree like ``params`` whose masked-in leaves are ADMM's sparse copy ``z``.
    """
    found = [
        s
        for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, AdmmState))
        if isinstance(s, AdmmState)
    ]
    if len(found) != 1:
        raise ValueError(
            "admm_params needs an optimizer state holding exactly one AdmmState; "
            f"found {len(found)}."
        )
    p_leaves, treedef = jax.tree.flatten(params)
    z_leaves = treedef.flatten_up_to(found[0].z)
    out = [p if _is_masked(z) else z for p, z in zip(p_leaves, z_leaves, strict=True)]
    return treedef.unflatten(out)


# --------------------------------------------------------------------------- sparsity


class SparsityStats(NamedTuple):
    """What :func:`sparsity` returns; every entry is a JAX array, so it works under jit.

    Attributes:
      overall: fraction of exact zeros over all array leaves (weighted by size).
      per_leaf: fraction of exact zeros of each leaf.
      zero_units: per leaf with ``ndim >= 2``, the number of all-zero output units (slices
        along the last axis: Dense columns, Conv filters); ``None`` for other leaves.
      zero_inputs: per leaf with ``ndim >= 2``, the number of all-zero input rows (slices
        along axis -2: Dense rows, Conv input channels); ``None`` for other leaves.
    """

    overall: jax.Array
    per_leaf: Any
    zero_units: Any
    zero_inputs: Any


def sparsity(params: Params) -> SparsityStats:
    """Counts exact zeros in ``params``: overall, per leaf, and whole zero units and rows.

    A unit (column / filter) or row counts only if every one of its weights is exactly
    zero, which is what structured compaction can remove.
    """
    leaves = jax.tree.leaves(params)
    total = sum(int(np.size(x)) for x in leaves)
    zeros = [jnp.sum(jnp.asarray(x) == 0, dtype=jnp.int32) for x in leaves]
    overall = (
        jnp.sum(jnp.stack([z.astype(jnp.float32) for z in zeros])) / total
        if total
        else jnp.zeros([], jnp.float32)
    )

    def frac(x: Any) -> jax.Array:
        x = jnp.asarray(x)
        if x.size == 0:
            return jnp.zeros([], jnp.float32)
        return jnp.mean((x == 0).astype(jnp.float32))

    def dead(x: Any, keep: int) -> jax.Array | None:
        x = jnp.asarray(x)
        if x.ndim < 2:
            return None
        keep %= x.ndim
        others = tuple(i for i in range(x.ndim) if i != keep)
        return jnp.sum(jnp.all(x == 0, axis=others), dtype=jnp.int32)

    return SparsityStats(
        overall=overall,
        per_leaf=jax.tree.map(frac, params),
        zero_units=jax.tree.map(lambda x: dead(x, -1), params),
        zero_inputs=jax.tree.map(lambda x: dead(x, -2), params),
    )
