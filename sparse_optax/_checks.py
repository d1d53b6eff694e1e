"""Argument checks shared by the operators and the transforms.

Checks run only on concrete values: under ``jax.jit`` a hyperparameter is a
tracer and cannot be inspected without a host round trip, so traced values are
trusted (that is what lets a schedule feed ``lam`` at run time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer)


def check_float_array(x: Any, name: str = "x") -> jax.Array:
    """Returns ``x`` as a JAX array; integer and boolean inputs are rejected."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{name} must be a floating-point array, got dtype {x.dtype}; "
            f"cast it first, e.g. {name}.astype(jnp.float32)."
        )
    return x


def check_hyper(
    value: Any,
    name: str,
    ok: Callable[[np.ndarray], np.ndarray],
    requirement: str,
) -> None:
    """Raises ``ValueError`` if a concrete hyperparameter violates ``ok``.

    ``requirement`` completes the sentence "``name`` must be ...".
    """
    if value is None:
        raise ValueError(f"{name} must be given (got None).")
    if not is_concrete(value):
        return
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a real number or array, got dtype {arr.dtype}.")
    # NaN hyperparameters are passed through: NaN in, NaN out.
    bad = ~ok(arr) & ~np.isnan(arr.astype(np.float64))
    if np.any(bad):
        shown = arr if arr.ndim == 0 else arr[bad].ravel()[:3]
        raise ValueError(f"{name} must be {requirement}, got {shown}.")


def check_nonnegative(value: Any, name: str) -> None:
    check_hyper(value, name, lambda v: v >= 0, ">= 0")


def check_positive(value: Any, name: str) -> None:
    check_hyper(value, name, lambda v: v > 0, "> 0")


def check_unit_interval(value: Any, name: str) -> None:
    check_hyper(value, name, lambda v: (v >= 0) & (v <= 1), "in [0, 1]")


def check_greater(value: Any, name: str, bound: float) -> None:
    check_hyper(value, name, lambda v: v > bound, f"> {bound}")
