"""Reference LeNets: shapes, parameter counts, and NNX/Linen twins computing the same."""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest
from flax import nnx

from sparse_optax.models import (
    LeNet5Caffe,
    LeNet5CaffeLinen,
    LeNet300100,
    LeNet300100Linen,
    max_pool_2x2,
)

# name -> (NNX class, Linen class, input shape, parameter count from the papers)
MODELS = {
    "lenet300": (LeNet300100, LeNet300100Linen, (3, 28, 28, 1), 266_610),
    "lenet5": (LeNet5Caffe, LeNet5CaffeLinen, (3, 28, 28, 1), 431_080),
}
LAYER_SHAPES = {
    "lenet300": {"fc1": (784, 300), "fc2": (300, 100), "fc3": (100, 10)},
    "lenet5": {
        "conv1": (5, 5, 1, 20),
        "conv2": (5, 5, 20, 50),
        "fc1": (800, 500),
        "fc2": (500, 10),
    },
}


def _count(tree) -> int:
    return sum(int(np.size(x)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_nnx_and_linen_twins(name: str):
    nnx_cls, linen_cls, shape, n_params = MODELS[name]
    x = jax.random.normal(jax.random.key(0), shape)

    model = nnx_cls(rngs=nnx.Rngs(0))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    assert _count(params) == n_params
    assert {k: v["kernel"].shape for k, v in params.items()} == LAYER_SHAPES[name]
    assert {k: v["bias"].shape for k, v in params.items()} == {
        k: s[-1:] for k, s in LAYER_SHAPES[name].items()
    }

    module: nn.Module = linen_cls()
    linen_shapes = jax.eval_shape(module.init, jax.random.key(0), x)
    assert _count(linen_shapes) == n_params
    assert jax.tree.map(lambda s: s.shape, linen_shapes["params"]) == jax.tree.map(np.shape, params)

    # Same weights -> same function: the twins share layer names and kernel layouts.
    y_nnx = nnx.jit(lambda m, v: m(v))(model, x)
    y_linen = jax.jit(module.apply)({"params": params}, x)
    assert y_nnx.shape == y_linen.shape == (shape[0], 10)
    np.testing.assert_allclose(y_linen, y_nnx, rtol=1e-5, atol=1e-5)


def _out_shape(model: nnx.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    graphdef, state = nnx.split(model)
    x = jax.ShapeDtypeStruct(shape, np.float32)
    return jax.eval_shape(lambda s, v: nnx.merge(graphdef, s)(v), state, x).shape


def test_lenet300_other_widths_flatten_trailing_axes():
    model = nnx.eval_shape(lambda: LeNet300100(12, (7, 5), 4, rngs=nnx.Rngs(1)))
    assert model.hidden == (7, 5)
    assert _out_shape(model, (2, 3, 4)) == (2, 4)


def test_lenet5_other_image_size():
    # 32x32 RGB: ((32 - 4) / 2 - 4) / 2 = 5, so fc1 reads 5 * 5 * 8 features.
    model = nnx.eval_shape(
        lambda: LeNet5Caffe((4, 8, 16), in_channels=3, image_size=32, rngs=nnx.Rngs(2))
    )
    assert model.fc1.kernel.shape == (200, 16)
    assert model.features == (4, 8, 16)
    assert _out_shape(model, (2, 32, 32, 3)) == (2, 10)


@pytest.mark.parametrize("shape", [(2, 24, 24, 3), (2, 9, 7, 4)])
def test_max_pool_2x2_matches_reduce_window(shape):
    # Continuous random input: no ties, so the gradients must agree exactly as well.
    x = jax.random.normal(jax.random.key(1), shape)
    ref = nnx.max_pool(x, (2, 2), (2, 2))
    np.testing.assert_array_equal(max_pool_2x2(x), ref)
    cot = jax.random.normal(jax.random.key(2), ref.shape)
    g = jax.grad(lambda x: (max_pool_2x2(x) * cot).sum())(x)
    g_ref = jax.grad(lambda x: (nnx.max_pool(x, (2, 2), (2, 2)) * cot).sum())(x)
    np.testing.assert_array_equal(g, g_ref)
