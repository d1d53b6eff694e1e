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


_X = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
_Y = np.arange(64) % 10


def _untrained() -> LeNet300100:
    return LeNet300100(in_features=4, rngs=nnx.Rngs(0))


def _fit(targets=_Y, **kwargs) -> LeNet300100:
    model = _untrained()
    train(model, optax.sgd(0.1), _X, targets, epochs=2, batch_size=16, progress=False, **kwargs)
    return model


def _fc1(model: LeNet300100) -> np.ndarray:
    return np.asarray(model.fc1.kernel.get_value())


def test_loss_fn_takes_the_targets_rows():
    default = _fc1(_fit())
    # One-hot soft labels through a custom loss follow the integer-label default.
    one_hot = np.eye(10, dtype=np.float32)[_Y]
    soft = _fc1(
        _fit(one_hot, loss_fn=lambda logits, t: optax.softmax_cross_entropy(logits, t).mean())
    )
    np.testing.assert_allclose(soft, default, rtol=1e-5, atol=1e-6)
    # A loss without gradient leaves the weights where they started.
    flat = _fc1(_fit(loss_fn=lambda logits, t: 0.0 * logits.sum()))
    start = _fc1(_untrained())
    np.testing.assert_array_equal(flat, start)
    assert not np.allclose(default, start)


def test_augment_reaches_every_training_batch():
    start = _untrained()
    # Zeroed inputs give the first kernel no gradient, while the output bias learns.
    blank = _fit(augment=lambda key, xb: 0.0 * xb)
    np.testing.assert_array_equal(_fc1(blank), _fc1(start))
    assert not np.allclose(blank.fc3.bias.get_value(), start.fc3.bias.get_value())
    assert not np.allclose(_fc1(_fit()), _fc1(start))

    # Keys are drawn per step from the seed: the same seed repeats a run, another differs.
    def noise(key, xb):
        return xb + jax.random.normal(key, xb.shape)

    a, b, c = _fit(augment=noise), _fit(augment=noise), _fit(augment=noise, seed=1)
    np.testing.assert_array_equal(_fc1(a), _fc1(b))
    assert not np.allclose(_fc1(a), _fc1(c))


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
