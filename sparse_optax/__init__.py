"""sparse_optax: proximal operators, optax transforms and Flax compaction for sparse networks.

Every ``prox_*(x, step, lam, ...)`` returns
``argmin_z 0.5 * ||z - x||^2 + step * penalty_*(z, lam, ...)``; see :mod:`sparse_optax.prox`.
"""

from sparse_optax.prox import (
    penalty_capped_l1,
    penalty_exclusive,
    penalty_group_lasso,
    penalty_half,
    penalty_l0,
    penalty_l1,
    penalty_l1_exclusive,
    penalty_mcp,
    penalty_scad,
    penalty_sparse_group_lasso,
    penalty_tl1,
    penalty_tl1_group,
    penalty_two_thirds,
    prox_capped_l1,
    prox_exclusive,
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

__version__ = "0.1.0"

__all__ = [
    "penalty_capped_l1",
    "penalty_exclusive",
    "penalty_group_lasso",
    "penalty_half",
    "penalty_l0",
    "penalty_l1",
    "penalty_l1_exclusive",
    "penalty_mcp",
    "penalty_scad",
    "penalty_sparse_group_lasso",
    "penalty_tl1",
    "penalty_tl1_group",
    "penalty_two_thirds",
    "prox_capped_l1",
    "prox_exclusive",
    "prox_group_lasso",
    "prox_half",
    "prox_l0",
    "prox_l1",
    "prox_l1_exclusive",
    "prox_mcp",
    "prox_scad",
    "prox_sparse_group_lasso",
    "prox_tl1",
    "prox_tl1_group",
    "prox_two_thirds",
]
