"""Brute-force global minimisation of the prox objectives, in float64 NumPy.

The penalties here are written from their textbook definitions, independently
of ``sparse_optax.prox``, so that a wrong formula there cannot hide a wrong
prox. Every penalty in the catalog is symmetric and nondecreasing in each
``|z_i|``, so a minimizer has ``sign(z_i) = sign(x_i)`` (or 0) and
``|z_i| <= |x_i|``; the grids search that box in magnitude space.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# ---- elementwise penalties P(|z|) (already multiplied by lam), broadcasting over params


def pen_l1(z, lam):
    return lam * z


def pen_l0(z, lam):
    return lam * (z != 0)


def pen_half(z, lam):
    return lam * np.sqrt(z)


def pen_two_thirds(z, lam):
    return lam * np.cbrt(z) ** 2


def pen_tl1(z, lam, a):
    return lam * (a + 1) * z / (a + z)


def pen_capped_l1(z, lam, rho):
    return lam * np.minimum(1.0, rho * z)


def pen_mcp(z, lam, gamma):
    return np.where(z <= gamma * lam, lam * z - z * z / (2 * gamma), gamma * lam * lam / 2)


def pen_scad(z, lam, a):
    mid = (2 * a * lam * z - z * z - lam * lam) / (2 * (a - 1))
    return np.where(z <= lam, lam * z, np.where(z <= a * lam, mid, lam * lam * (a + 1) / 2))


def elementwise_min(
    x: np.ndarray,
    step: np.ndarray,
    pen: Callable[..., np.ndarray],
    params: tuple[np.ndarray, ...],
    n: int = 2001,
    levels: int = 4,
) -> np.ndarray:
    """min_z 0.5 (z - x)^2 + step * pen(|z|, *params), one problem per entry of x."""
    ax = np.abs(x)[:, None]
    step = np.broadcast_to(step, x.shape)[:, None]
    params = tuple(np.broadcast_to(p, x.shape)[:, None] for p in params)

    def f(z):
        return 0.5 * (z - ax) ** 2 + step * pen(z, *params)

    lo = np.zeros_like(ax)
    hi = ax.copy()
    best = np.minimum(f(lo), f(hi))[:, 0]
    for _ in range(levels):
        grid = lo + (hi - lo) * np.linspace(0.0, 1.0, n)[None, :]
        vals = f(grid)
        i = np.argmin(vals, axis=1)
        best = np.minimum(best, vals[np.arange(len(i)), i])
        h = (hi - lo)[:, 0] / (n - 1)
        center = grid[np.arange(len(i)), i]
        lo = np.maximum(center - 2 * h, 0.0)[:, None]
        hi = np.minimum(center + 2 * h, ax[:, 0])[:, None]
    return best


def group_min(
    x: np.ndarray,
    objective: Callable[[np.ndarray], np.ndarray],
    n: int,
    levels: int = 5,
) -> np.ndarray:
    """Grid minimum of ``objective(z)`` over ``0 <= z_i <= |x_i|`` for each group.

    ``x`` has shape (groups, members) with few members; ``objective`` maps an array
    (groups, points, members) of magnitudes to (groups, points).
    """
    g, m = x.shape
    ax = np.abs(x)
    lo = np.zeros_like(ax)
    hi = ax.copy()
    axes = np.stack(np.meshgrid(*([np.linspace(0.0, 1.0, n)] * m), indexing="ij"), -1)
    unit = axes.reshape(-1, m)
    best = np.full(g, np.inf)
    for _ in range(levels):
        pts = lo[:, None, :] + (hi - lo)[:, None, :] * unit[None]
        vals = objective(pts)
        i = np.argmin(vals, axis=1)
        best = np.minimum(best, vals[np.arange(g), i])
        h = (hi - lo) / (n - 1)
        center = pts[np.arange(g), i]
        lo = np.maximum(center - 2 * h, 0.0)
        hi = np.minimum(center + 2 * h, ax)
    return best
