"""The example training loop's options."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from flax import nnx
from multidevice import run_on_8_host_devices

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


def _trained_kernel(targets, loss_fn=None):
    model = LeNet300100(in_features=4, rngs=nnx.Rngs(0))
    x = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    train(
        model, optax.sgd(0.1), x, targets, epochs=2, batch_size=16, progress=False, loss_fn=loss_fn
    )
    return np.asarray(model.fc1.kernel.get_value())


def test_loss_fn_takes_the_targets_rows():
    y = np.arange(64) % 10
    default = _trained_kernel(y)
    # One-hot soft labels through a custom loss follow the integer-label default.
    one_hot = np.eye(10, dtype=np.float32)[y]
    soft = _trained_kernel(one_hot, lambda logits, t: optax.softmax_cross_entropy(logits, t).mean())
    np.testing.assert_allclose(soft, default, rtol=1e-5, atol=1e-6)
    # A loss without gradient leaves the weights where they started.
    flat = _trained_kernel(y, lambda logits, t: 0.0 * logits.sum())
    start = np.asarray(LeNet300100(in_features=4, rngs=nnx.Rngs(0)).fc1.kernel.get_value())
    np.testing.assert_array_equal(flat, start)
    assert not np.allclose(default, start)


def test_augment_reaches_every_training_batch():
    x = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    y = np.arange(64) % 10

    def fit(augment, seed=0):
        model = LeNet300100(in_features=4, rngs=nnx.Rngs(0))
        train(
            model,
            optax.sgd(0.1),
            x,
            y,
            epochs=2,
            batch_size=16,
            seed=seed,
            progress=False,
            augment=augment,
        )
        return model

    start = LeNet300100(in_features=4, rngs=nnx.Rngs(0))
    # Zeroed inputs give the first kernel no gradient, while the output bias learns.
    blank = fit(lambda key, xb: 0.0 * xb)
    np.testing.assert_array_equal(blank.fc1.kernel.get_value(), start.fc1.kernel.get_value())
    assert not np.allclose(blank.fc3.bias.get_value(), start.fc3.bias.get_value())
    assert not np.allclose(fit(None).fc1.kernel.get_value(), start.fc1.kernel.get_value())

    # Keys are drawn per step from the seed: the same seed repeats a run, another differs.
    def noise(key, xb):
        return xb + jax.random.normal(key, xb.shape)

    a, b, c = fit(noise), fit(noise), fit(noise, seed=1)
    np.testing.assert_array_equal(a.fc1.kernel.get_value(), b.fc1.kernel.get_value())
    assert not np.allclose(a.fc1.kernel.get_value(), c.fc1.kernel.get_value())


_SHARDED_SCRIPT = """
import json
import jax, numpy as np, optax
from flax import nnx
import sparse_optax.training as training
from sparse_optax.models import LeNet300100

x = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
y = np.arange(64) % 10


def drop(key, xb):
    return jax.numpy.where(jax.random.bernoulli(key, 0.7, xb.shape), xb / 0.7, 0.0)


def fit(devices):
    training._mesh = lambda: jax.sharding.Mesh(np.asarray(devices), ("data",))
    model = LeNet300100(in_features=4, rngs=nnx.Rngs(0))
    training.train(model, optax.sgd(0.1), x, y, epochs=2, batch_size=16, progress=False,
                   augment=drop)
    return np.asarray(model.fc1.kernel.get_value())


one, eight = fit(jax.devices()[:1]), fit(jax.devices())
start = np.asarray(LeNet300100(in_features=4, rngs=nnx.Rngs(0)).fc1.kernel.get_value())
print("RESULT" + json.dumps({"devices": len(jax.devices()),
                             "diff": float(np.abs(one - eight).max()),
                             "moved": float(np.abs(one - start).max())}))
"""


def test_augment_draws_the_same_noise_on_a_sharded_batch():
    # The batch is split over 8 devices; the dropout masks must not depend on that.
    out = run_on_8_host_devices(_SHARDED_SCRIPT)
    assert out["devices"] == 8
    assert out["moved"] > 1e-3
    assert out["diff"] < 1e-5
