"""The example training loop's options."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from sparse_optax.models import LeNet300100
from sparse_optax.training import train


def test_compiler_options_reach_the_training_step():
    model = LeNet300100(in_features=4, rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    y = np.arange(32) % 10
    # XLA rejects an option it does not know, so this passes only if it is passed on.
    with pytest.raises(jax.errors.JaxRuntimeError, match="no_such_option"):
        train(
            model,
            optax.sgd(0.1),
            x,
            y,
            epochs=1,
            batch_size=16,
            progress=False,
            compiler_options={"no_such_option": 1},
        )
