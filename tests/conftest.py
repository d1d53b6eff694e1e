"""Shared test settings.

The tests compare models and operators with exact references. On GPUs, float32 matrix
products and convolutions default to TF32 (about 1e-3 relative error), which would
swamp those comparisons, so they run at full float32 precision; on CPU this changes
nothing.
"""

import jax

jax.config.update("jax_default_matmul_precision", "highest")
