"""Structured compaction: exact shapes, unchanged outputs, both Flax APIs."""

from __future__ import annotations

import textwrap

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from multidevice import run_on_8_host_devices

import sparse_optax as so
from sparse_optax.models import LeNet5Caffe, LeNet5CaffeLinen, LeNet300100, LeNet300100Linen

TOL = dict(atol=1e-5, rtol=1e-5)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _zero(var: nnx.Variable, index) -> None:
    var[...] = var[...].at[index].set(0.0)


def _set_bias(var: nnx.Variable, seed: int, scale: float = 0.5) -> None:
    var[...] = jnp.asarray(_rng(seed).normal(size=var.shape) * scale, var.dtype)


# Jitted: a whole forward pass compiles once, eager mode compiles every op shape.
_forward = nnx.jit(lambda m, v: m(v))


def _check(old, new, x, report):
    xn = x[..., report.kept_inputs]
    np.testing.assert_allclose(_forward(new, xn), _forward(old, x), **TOL)


# ---------------------------------------------------------------------------- LeNet-300-100


def _sparse_lenet300(seed: int):
    r = _rng(seed)
    m = LeNet300100(rngs=nnx.Rngs(seed))
    dead1_in = r.choice(300, 200, replace=False)  # columns of fc1 -> constant relu(bias)
    dead1_out = np.setdiff1d(r.choice(300, 80, replace=False), dead1_in)  # rows of fc2
    dead2_in = r.choice(100, 40, replace=False)
    dead_inputs = r.choice(784, 300, replace=False)
    _zero(m.fc1.kernel, (slice(None), dead1_in))
    _zero(m.fc2.kernel, (dead1_out, slice(None)))
    _zero(m.fc2.kernel, (slice(None), dead2_in))
    _zero(m.fc1.kernel, (dead_inputs, slice(None)))
    for i, layer in enumerate((m.fc1, m.fc2, m.fc3)):
        _set_bias(layer.bias, seed + i)
    h1 = 300 - len(np.union1d(dead1_in, dead1_out))
    return m, (784 - len(dead_inputs), h1, 100 - len(dead2_in))


def test_lenet300_nnx_shapes_and_outputs():
    m, (n_in, h1, h2) = _sparse_lenet300(0)
    x = jax.random.normal(jax.random.key(0), (8, 784))
    new, report = so.compact(m, x)
    assert new.fc1.kernel.shape == (n_in, h1)
    assert new.fc2.kernel.shape == (h1, h2)
    assert new.fc3.kernel.shape == (h2, 10)
    assert (new.fc1.in_features, new.fc1.out_features, new.hidden) == (n_in, h1, (h1, h2))
    assert len(report.kept_inputs) == n_in and report.num_inputs == 784
    _check(m, new, x, report)
    assert report.params_after < report.params_before
    text = str(report)
    assert "fc1" in text and f"300->{h1}" in text
    # The original is untouched.
    assert m.fc1.kernel.shape == (784, 300)


def test_lenet300_linen_matches_nnx_rules():
    module = LeNet300100Linen()
    x = jax.random.normal(jax.random.key(1), (8, 784))
    variables = module.init(jax.random.key(0), x)
    r = _rng(1)
    p = jax.tree.map(np.array, variables["params"])
    dead1 = r.choice(300, 250, replace=False)
    p["fc1"]["kernel"][:, dead1] = 0.0
    p["fc1"]["bias"][:] = r.normal(size=300)
    p["fc3"]["kernel"][:50] = 0.0  # rows: fc2 units 0..49 feed nothing
    p["fc2"]["bias"][:] = r.normal(size=100)
    variables = {"params": jax.tree.map(jnp.asarray, p)}
    new_module, new_vars, report = so.compact_linen(module, variables, x)
    assert new_module.hidden == (50, 50)
    assert new_vars["params"]["fc1"]["kernel"].shape == (784, 50)
    assert new_vars["params"]["fc2"]["kernel"].shape == (50, 50)
    assert new_vars["params"]["fc3"]["kernel"].shape == (50, 10)
    assert report.widths["fc1"] == 50
    np.testing.assert_allclose(
        new_module.apply(new_vars, x[:, report.kept_inputs]), module.apply(variables, x), **TOL
    )


# ---------------------------------------------------------------------------- LeNet-5-Caffe


def _sparse_lenet5(seed: int):
    r = _rng(seed)
    m = LeNet5Caffe(rngs=nnx.Rngs(seed))
    dead_f1 = r.choice(20, 12, replace=False)  # conv1 filters (constant relu(bias) maps)
    dead_f2 = r.choice(50, 30, replace=False)  # conv2 filters
    dead_c2_out = np.setdiff1d(np.arange(50), dead_f2)[:5]  # conv2 channels fc1 never reads
    rows = np.nonzero(np.isin(np.arange(800) % 50, dead_c2_out))[0]
    dead_h = r.choice(500, 420, replace=False)
    _zero(m.conv1.kernel, (..., dead_f1))
    _zero(m.conv2.kernel, (..., dead_f2))
    _zero(m.fc1.kernel, (rows, slice(None)))
    _zero(m.fc1.kernel, (slice(None), dead_h))
    for i, layer in enumerate((m.conv1, m.conv2, m.fc1, m.fc2)):
        _set_bias(layer.bias, seed + i, 0.3)
    c2 = 50 - len(dead_f2) - len(dead_c2_out)
    return m, (8, c2, 80)


def test_lenet5_nnx_shapes_and_outputs():
    m, (c1, c2, h) = _sparse_lenet5(2)
    x = jax.random.normal(jax.random.key(2), (4, 28, 28, 1))
    new, report = so.compact(m, x)
    assert new.conv1.kernel.shape == (5, 5, 1, c1)
    assert new.conv2.kernel.shape == (5, 5, c1, c2)
    assert new.fc1.kernel.shape == (16 * c2, h)
    assert new.features == (c1, c2, h)
    assert new.conv2.in_features == c1 and new.fc1.in_features == 16 * c2
    _check(m, new, x, report)
    assert report.flops_after < 0.2 * report.flops_before


def test_lenet5_linen():
    module = LeNet5CaffeLinen()
    x = jax.random.normal(jax.random.key(3), (4, 28, 28, 1))
    variables = module.init(jax.random.key(0), x)
    p = jax.tree.map(np.array, variables["params"])
    r = _rng(3)
    p["conv1"]["kernel"][..., :15] = 0.0
    p["conv1"]["bias"][:] = r.normal(size=20)
    p["conv2"]["kernel"][..., 40:] = 0.0
    p["conv2"]["bias"][:] = r.normal(size=50)
    p["fc1"]["kernel"][:, 100:] = 0.0
    variables = {"params": jax.tree.map(jnp.asarray, p)}
    new_module, new_vars, report = so.compact_linen(module, variables, x)
    assert new_module.features == (5, 40, 100)
    assert new_vars["params"]["fc1"]["kernel"].shape == (640, 100)
    np.testing.assert_allclose(new_module.apply(new_vars, x), module.apply(variables, x), **TOL)


# ---------------------------------------------------------------------------- residual graphs


class ResCNN(nnx.Module):
    """Stem conv-BN-relu, one residual block (conv-BN-relu-conv-BN + skip), GAP, head."""

    def __init__(self, c: int = 8, padding: str = "SAME", *, rngs: nnx.Rngs):
        def conv(i, o):
            return nnx.Conv(i, o, (3, 3), padding=padding, use_bias=False, rngs=rngs)

        self.padding = padding
        self.stem, self.bn0 = conv(3, c), nnx.BatchNorm(c, rngs=rngs)
        self.c1, self.bn1 = conv(c, c), nnx.BatchNorm(c, rngs=rngs)
        self.c2, self.bn2 = conv(c, c), nnx.BatchNorm(c, rngs=rngs)
        self.head = nnx.Linear(c, 5, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.bn0(self.stem(x)))
        y = nnx.relu(self.bn1(self.c1(x)))
        y = self.bn2(self.c2(y))
        if self.padding == "VALID":
            x = x[:, 2:-2, 2:-2, :]
        x = nnx.relu(x + y)
        return self.head(x.mean(axis=(1, 2)))


def _randomize_bn(m: nnx.Module, seed: int) -> None:
    r = _rng(seed)
    for _, bn in nnx.iter_modules(m):
        if isinstance(bn, nnx.BatchNorm):
            n = bn.num_features
            bn.mean[...] = jnp.asarray(r.normal(size=n), jnp.float32)
            bn.var[...] = jnp.asarray(r.uniform(0.5, 2.0, size=n), jnp.float32)
            bn.scale[...] = jnp.asarray(r.uniform(0.5, 1.5, size=n), jnp.float32)
            bn.bias[...] = jnp.asarray(r.normal(size=n), jnp.float32)


def test_residual_cnn_batchnorm_same_padding():
    m = ResCNN(rngs=nnx.Rngs(4))
    _randomize_bn(m, 4)
    # Branch channel 0: dead filter, BN output relu'd to exactly 0 -> removable.
    _zero(m.c1.kernel, (..., 0))
    m.bn1.bias[...] = m.bn1.bias[...].at[0].set(-5.0)
    # Branch channel 1: dead filter but a nonzero constant; SAME padding makes its
    # contribution position dependent, so it must stay.
    _zero(m.c1.kernel, (..., 1))
    m.bn1.bias[...] = m.bn1.bias[...].at[1].set(2.0)
    # Branch channel 2: c2 never reads it -> removable with its filter and BN entries.
    _zero(m.c2.kernel, (slice(None), slice(None), 2, slice(None)))
    # Residual channel 3: unread by c1 and head -> removed from stem, bn0, c2 and bn2.
    _zero(m.c1.kernel, (slice(None), slice(None), 3, slice(None)))
    _zero(m.head.kernel, (3, slice(None)))
    # Residual channel 4: unread by head only -> still read by the block, kept.
    _zero(m.head.kernel, (4, slice(None)))
    x = jax.random.normal(jax.random.key(4), (2, 8, 8, 3))
    new, report = so.compact(m, x)
    assert new.stem.kernel.shape == (3, 3, 3, 7)
    assert new.bn0.num_features == 7 and new.bn0.mean.shape == (7,)
    assert new.c1.kernel.shape == (3, 3, 7, 6)
    assert new.bn1.scale.shape == (6,)
    assert new.c2.kernel.shape == (3, 3, 6, 7)
    assert new.head.kernel.shape == (7, 5)
    _check(m, new, x, report)


def test_batchnorm_shift_folded_after_dead_conv():
    """The NNI #2130 case: a dead filter followed by BN with a nonzero shift."""
    m = ResCNN(padding="VALID", rngs=nnx.Rngs(5))
    _randomize_bn(m, 5)
    _zero(m.c1.kernel, (..., 1))  # constant relu(bn1 shift) > 0, folded into bn2's mean
    m.bn1.bias[...] = m.bn1.bias[...].at[1].set(2.0)
    m.bn1.scale[...] = m.bn1.scale[...].at[5].set(0.0)  # zero BN scale: constant too
    x = jax.random.normal(jax.random.key(5), (2, 10, 10, 3))
    new, report = so.compact(m, x)
    assert new.c1.kernel.shape == (3, 3, 8, 6)
    assert new.c2.kernel.shape == (3, 3, 6, 8)
    _check(m, new, x, report)


class ResMLP(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.l0 = nnx.Linear(16, 32, rngs=rngs)
        self.l1 = nnx.Linear(32, 24, rngs=rngs)
        self.l2 = nnx.Linear(24, 32, rngs=rngs)
        self.out = nnx.Linear(32, 4, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.l0(x))
        h = h + self.l2(nnx.relu(self.l1(h)))
        return self.out(h)


def test_mlp_residual_skip():
    m = ResMLP(rngs=nnx.Rngs(6))
    for i, layer in enumerate((m.l0, m.l1, m.l2, m.out)):
        _set_bias(layer.bias, 60 + i)
    _zero(m.l1.kernel, (slice(None), slice(0, 10)))  # 10 constant hidden units, folded
    # Residual channels 0..4: constant in both branches -> folded into l1 and out.
    _zero(m.l0.kernel, (slice(None), slice(0, 5)))
    _zero(m.l2.kernel, (slice(None), slice(0, 5)))
    # Residual channels 5..9: constant in the skip only -> kept.
    _zero(m.l0.kernel, (slice(None), slice(5, 10)))
    x = jax.random.normal(jax.random.key(6), (8, 16))
    new, report = so.compact(m, x)
    assert new.l0.kernel.shape == (16, 27)
    assert new.l1.kernel.shape == (27, 14)
    assert new.l2.kernel.shape == (14, 27)
    assert new.out.kernel.shape == (27, 4)
    _check(m, new, x, report)


class ConcatNet(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.a = nnx.Linear(6, 5, rngs=rngs)
        self.b = nnx.Linear(6, 7, rngs=rngs)
        self.out = nnx.Linear(12, 3, rngs=rngs)

    def __call__(self, x):
        h = jnp.concatenate([nnx.relu(self.a(x)), jnp.tanh(self.b(x))], axis=-1)
        return self.out(h)


def test_concatenation():
    m = ConcatNet(rngs=nnx.Rngs(7))
    _set_bias(m.b.bias, 7)
    _zero(m.a.kernel, (slice(None), 1))
    m.a.bias[...] = m.a.bias[...].at[1].set(-1.0)  # relu -> 0
    _zero(m.b.kernel, (slice(None), slice(0, 3)))  # tanh(bias) constants, folded
    _zero(m.out.kernel, (11, slice(None)))  # b's last unit unread
    x = jax.random.normal(jax.random.key(7), (4, 6))
    new, report = so.compact(m, x)
    assert new.a.kernel.shape == (6, 4)
    assert new.b.kernel.shape == (6, 3)
    assert new.out.kernel.shape == (7, 3)
    _check(m, new, x, report)


# ---------------------------------------------------------------------------- no-ops, errors


def test_nothing_to_remove_is_identity():
    m = LeNet5Caffe(rngs=nnx.Rngs(8))
    x = jax.random.normal(jax.random.key(8), (2, 28, 28, 1))
    new, report = so.compact(m, x)
    assert not report.changed and len(report.kept_inputs) == 1
    for a, b in zip(jax.tree.leaves(nnx.state(m)), jax.tree.leaves(nnx.state(new)), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_forward(new, x), _forward(m, x))


class Sorted(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.a = nnx.Linear(6, 8, rngs=rngs)
        self.b = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        return self.b(jnp.sort(nnx.relu(self.a(x)), axis=-1))


def test_unsupported_operator_keeps_or_raises():
    m = Sorted(rngs=nnx.Rngs(9))
    _zero(m.a.kernel, (slice(None), slice(0, 4)))
    _set_bias(m.a.bias, 9)
    x = jax.random.normal(jax.random.key(9), (4, 6))
    new, report = so.compact(m, x)
    assert new.a.kernel.shape == (6, 8)  # sort mixes channels: nothing may go
    assert any("sort" in n and "a/kernel" in n for n in report.notes)
    np.testing.assert_allclose(_forward(new, x), _forward(m, x), **TOL)
    with pytest.raises(ValueError, match="sort.*a/kernel"):
        so.compact(m, x, strict=True)


# ---------------------------------------------------------------------------- structure=


def _np_softplus(h: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, h).astype(h.dtype)


def _opaque_softplus(h: jax.Array) -> jax.Array:
    """softplus computed on the host: per unit, but invisible to the tracer."""
    out = jax.ShapeDtypeStruct(h.shape, h.dtype)
    return jax.pure_callback(_np_softplus, out, h, vmap_method="broadcast_all")


class Opaque(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.a = nnx.Linear(6, 8, rngs=rngs)
        self.b = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        return self.b(_opaque_softplus(self.a(x)))


def test_explicit_structure_through_opaque_operation():
    m = Opaque(rngs=nnx.Rngs(12))
    _set_bias(m.a.bias, 12)
    _zero(m.a.kernel, (slice(None), slice(0, 3)))  # constant softplus(bias), folded
    _zero(m.b.kernel, (slice(5, 7), slice(None)))  # unread
    x = jax.random.normal(jax.random.key(12), (4, 6))

    kept, report = so.compact(m, x)
    assert kept.a.kernel.shape == (6, 8)
    assert report.notes == [
        "unsupported operation 'pure_callback': kept the channels of a/bias, a/kernel"
    ]

    link = so.Link("a", "b", act=jax.nn.softplus)
    new, report = so.compact(m, x, structure=[link])
    assert new.a.kernel.shape == (6, 3) and new.a.bias.shape == (3,)
    assert new.b.kernel.shape == (3, 3) and new.b.in_features == 3
    assert report.notes == [] and report.widths["a"] == 3
    _check(m, new, x, report)

    # A wrong declaration (identity instead of softplus) folds wrong constants: the
    # output check refuses it.
    with pytest.raises(RuntimeError, match="structure= links"):
        so.compact(m, x, structure=[("a", "b")])
    with pytest.raises(ValueError, match="block 2 = 16"):
        so.compact(m, x, structure=[("a", "b", 2)])
    with pytest.raises(ValueError, match="no parameter 'c/kernel'"):
        so.compact(m, x, structure=[("a", "c")])


class _OpaqueConvNet(nn.Module):
    width: int = 4

    @nn.compact
    def __call__(self, x):
        h = nn.Conv(self.width, (3, 3), padding="VALID", name="conv")(x)
        h = _opaque_softplus(h)
        return nn.Dense(3, name="fc")(h.reshape(h.shape[0], -1))


def test_explicit_structure_conv_flatten_linen():
    net = _OpaqueConvNet()
    x = jax.random.normal(jax.random.key(13), (2, 6, 6, 2))
    v = jax.tree.map(np.array, net.init(jax.random.key(0), x))
    v["params"]["conv"]["kernel"][..., 0] = 0.0  # constant map softplus(bias[0])
    v["params"]["conv"]["bias"][:] = [1.5, -0.5, 0.3, 0.7]
    v["params"]["fc"]["kernel"][3::4] = 0.0  # channel 3 of the flattened 4x4x4 map
    v = jax.tree.map(jnp.asarray, v)
    new_net, new_vars, report = so.compact_linen(
        net,
        v,
        x,
        structure=[("conv", "fc", 16, jax.nn.softplus)],
        rebuild=lambda m, w: m.clone(width=w["conv"]),
    )
    assert new_vars["params"]["conv"]["kernel"].shape == (3, 3, 2, 2)
    assert new_vars["params"]["fc"]["kernel"].shape == (32, 3)
    assert report.notes == []
    np.testing.assert_allclose(new_net.apply(new_vars, x), net.apply(v, x), **TOL)


# ---------------------------------------------------------------------------- state


def test_roundtrip_serialization_and_optimizer_state():
    m, (n_in, h1, h2) = _sparse_lenet300(0)  # same shapes as above: compiled code is reused
    x = jax.random.normal(jax.random.key(10), (8, 784))
    tx = optax.adam(1e-3)
    params = nnx.state(m, nnx.Param)
    opt_state = tx.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    _, opt_state = tx.update(grads, opt_state, params)

    new, report = so.compact(m, x)
    blob = flax.serialization.to_bytes(nnx.to_pure_dict(nnx.state(new)))
    fresh = LeNet300100(in_features=n_in, hidden=new.hidden, rngs=nnx.Rngs(0))
    state = nnx.state(fresh)
    restored = flax.serialization.from_bytes(nnx.to_pure_dict(state), blob)
    nnx.replace_by_pure_dict(state, restored)
    nnx.update(fresh, state)
    xn = x[:, report.kept_inputs]
    np.testing.assert_array_equal(_forward(fresh, xn), _forward(new, xn))

    new_opt = report.apply_to(opt_state)
    new_params = nnx.state(new, nnx.Param)
    shapes = jax.tree.map(jnp.shape, new_params)
    assert jax.tree.map(jnp.shape, new_opt[0].mu) == shapes
    assert jax.tree.map(jnp.shape, new_opt[0].nu) == shapes
    np.testing.assert_array_equal(
        report.apply_to(params)["fc1"]["kernel"][...], new_params["fc1"]["kernel"][...]
    )
    np.testing.assert_allclose(new_opt[0].mu["fc2"]["kernel"][...], 0.1, rtol=1e-6)
    updates, _ = tx.update(jax.tree.map(jnp.ones_like, new_params), new_opt, new_params)
    assert jax.tree.map(jnp.shape, updates) == shapes


def test_linen_batchnorm_collections():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(6, (3, 3), padding="VALID", use_bias=False, name="conv")(x)
            x = nn.relu(nn.BatchNorm(use_running_average=True, name="bn")(x))
            return nn.Dense(3, name="fc")(x.reshape(x.shape[0], -1))

    net = Net()
    x = jax.random.normal(jax.random.key(11), (2, 6, 6, 2))
    v = jax.tree.map(np.array, net.init(jax.random.key(0), x))
    v["params"]["conv"]["kernel"][..., :2] = 0.0
    v["params"]["bn"]["bias"][:] = [1.0, -1.0, 0.5, 0.2, 0.1, 0.3]
    v["batch_stats"]["bn"]["mean"][:] = [0.3, 0.1, 0.0, 0.0, 0.0, 0.0]
    v = jax.tree.map(jnp.asarray, v)
    # Channels 0, 1 are constant, so they fold into fc's bias; the module is rebuilt
    # by the caller since this Net has no width fields.
    _, new_vars, report = so.compact_linen(net, v, x, rebuild=lambda m, w: _SmallNet(w["conv"]))
    assert new_vars["params"]["conv"]["kernel"].shape == (3, 3, 2, 4)
    assert new_vars["batch_stats"]["bn"]["var"].shape == (4,)
    assert report.widths["conv"] == 4


class _SmallNet(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(self.width, (3, 3), padding="VALID", use_bias=False, name="conv")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=True, name="bn")(x))
        return nn.Dense(3, name="fc")(x.reshape(x.shape[0], -1))


# ---------------------------------------------------------------------------- sharded params

_SHARDED = textwrap.dedent(
    """
    import json
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as PS

    import sparse_optax as so
    import sparse_optax.compaction as sc
    from jax._src.array import ArrayImpl
    from sparse_optax.models import LeNet300100

    # On CPU, jax.transfer_guard does not see np.asarray (zero-copy), so watch the two
    # ways a weight could reach the host: numpy calls made by the compaction module
    # and Array._value (float(), __array__, device_get).
    copied, watching = [], [False]

    class NumpyWatch:
        def __getattr__(self, name):
            f = getattr(np, name)
            if name in ("size", "ndim", "shape") or isinstance(f, (type, np.ufunc)):
                return f
            if not callable(f):
                return f
            def call(*args, **kwargs):
                for a in (*args, *kwargs.values()):
                    if isinstance(a, jax.Array) and a.ndim > 1:
                        copied.append(("np." + name, a.shape))
                return f(*args, **kwargs)
            return call

    sc.np = NumpyWatch()
    value = ArrayImpl._value
    def watched(self):
        if watching[0] and self.ndim > 1:
            copied.append(("_value", self.shape))
        return value.fget(self)
    ArrayImpl._value = property(watched)

    assert jax.device_count() == 8, jax.device_count()
    mesh = Mesh(np.array(jax.devices()).reshape(2, 4), ("data", "model"))
    m = LeNet300100(rngs=nnx.Rngs(0))
    r = np.random.default_rng(0)
    k1, k2 = np.array(m.fc1.kernel[...]), np.array(m.fc2.kernel[...])
    k1[:, r.choice(300, 180, replace=False)] = 0.0  # 120 fc1 units left
    k1[r.choice(784, 300, replace=False)] = 0.0  # 484 inputs left
    k2[:, :40] = 0.0  # 60 fc2 units left
    m.fc1.kernel[...], m.fc2.kernel[...] = jnp.asarray(k1), jnp.asarray(k2)
    m.fc1.bias[...] = jnp.asarray(r.normal(size=300), jnp.float32)
    m.fc2.bias[...] = jnp.asarray(r.normal(size=100), jnp.float32)
    specs = {
        "fc1": {"kernel": PS(None, "model"), "bias": PS("model")},
        "fc2": {"kernel": PS(None, "model"), "bias": PS("model")},
        "fc3": {"kernel": PS("model", None), "bias": PS()},
    }
    for layer, spec in specs.items():
        for name, ps in spec.items():
            var = getattr(getattr(m, layer), name)
            var[...] = jax.device_put(var[...], NamedSharding(mesh, ps))
    x = jax.random.normal(jax.random.key(0), (8, 784))
    want = np.asarray(m(x))
    watching[0] = True
    new, report = so.compact(m, x)
    watching[0] = False
    got = np.asarray(new(x[:, report.kept_inputs]))
    out = {}
    for layer in specs:
        for name in ("kernel", "bias"):
            v = getattr(getattr(new, layer), name)[...]
            out[layer + "/" + name] = {
                "shape": list(v.shape),
                "devices": sorted(d.id for d in v.sharding.device_set),
                "same_layout": v.sharding.is_equivalent_to(
                    NamedSharding(mesh, specs[layer][name]), v.ndim
                ),
            }
    print("RESULT" + json.dumps({
        "leaves": out,
        "mesh": sorted(d.id for d in mesh.devices.flat),
        "max_diff": float(np.max(np.abs(got - want))),
        "host_copies": [list(map(str, c)) for c in copied],
        "kept_inputs": len(report.kept_inputs),
    }))
    """
)


def test_sharded_params_stay_on_their_devices():
    result = run_on_8_host_devices(_SHARDED)
    assert result["max_diff"] <= 1e-5
    assert result["host_copies"] == []  # no weight matrix was copied to the host
    assert result["kept_inputs"] == 484
    shapes = {k: tuple(v["shape"]) for k, v in result["leaves"].items()}
    assert shapes == {
        "fc1/kernel": (484, 120),
        "fc1/bias": (120,),
        "fc2/kernel": (120, 60),
        "fc2/bias": (60,),
        "fc3/kernel": (60, 10),
        "fc3/bias": (10,),
    }
    for name, leaf in result["leaves"].items():
        assert leaf["devices"] == result["mesh"], name  # not gathered onto one device
        # The new sizes are divisible by the 'model' axis, so the layout is unchanged.
        assert leaf["same_layout"], name
