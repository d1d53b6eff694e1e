"""Tests of the optax transforms: proximal steps, masks, schedules, wrappers, ADMM."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.training import train_state

import sparse_optax as so

ETA = 0.1

# name, factory(lam, **kw), prox function, prox kwargs, lam for the one-step checks
# (strong enough to zero a good share of N(0, 1) entries), lam for the training loop.
FACTORIES = [
    ("soft_threshold", so.soft_threshold, so.prox_l1, {}, 5.0, 0.01),
    ("hard_threshold", so.hard_threshold, so.prox_l0, {}, 5.0, 0.003),
    ("half_threshold", so.half_threshold, so.prox_half, {}, 5.0, 0.01),
    ("two_thirds_threshold", so.two_thirds_threshold, so.prox_two_thirds, {}, 5.0, 0.01),
    ("transformed_l1", so.transformed_l1, so.prox_tl1, {"a": 1.0}, 5.0, 0.01),
    ("capped_l1", so.capped_l1, so.prox_capped_l1, {"rho": 10.0}, 5.0, 0.003),
    ("mcp", so.mcp, so.prox_mcp, {"gamma": 3.0}, 5.0, 0.03),
    ("scad", so.scad, so.prox_scad, {"a": 3.7}, 5.0, 0.03),
    ("group_lasso", so.group_lasso, so.prox_group_lasso, {"axis": -1}, 30.0, 0.2),
    ("group_hard_threshold", so.group_hard_threshold, so.prox_group_l0, {"axis": -1}, 60.0, 1.0),
    ("exclusive_lasso", so.exclusive_lasso, so.prox_exclusive, {"axis": -1}, 3.0, 0.003),
    (
        "sparse_group_lasso",
        so.sparse_group_lasso,
        so.prox_sparse_group_lasso,
        {"alpha": 0.5, "axis": -1},
        20.0,
        0.02,
    ),
    ("l1_exclusive", so.l1_exclusive, so.prox_l1_exclusive, {"mu": 0.5, "axis": -1}, 4.0, 0.01),
    (
        "tl1_group",
        so.tl1_group,
        so.prox_tl1_group,
        {"a": 1.0, "alpha": 0.5, "axis": -1},
        20.0,
        0.01,
    ),
]
IDS = [f[0] for f in FACTORIES]


def _make(factory, kwargs, lam, **kw):
    return factory(lam, **kwargs, **kw)


def _tree(key, dtype=jnp.float32, scale=1.0):
    ks = jax.random.split(key, 4)
    return {
        "dense": {
            "kernel": (scale * jax.random.normal(ks[0], (8, 6))).astype(dtype),
            "bias": (scale * jax.random.normal(ks[1], (6,))).astype(dtype),
        },
        "conv": {"kernel": (scale * jax.random.normal(ks[2], (3, 3, 2, 4))).astype(dtype)},
        "scale": (scale * jax.random.normal(ks[3], ())).astype(dtype),
    }


P = _tree(jax.random.PRNGKey(0))
G = _tree(jax.random.PRNGKey(1), scale=3.0)
KERNELS = [("dense", "kernel"), ("conv", "kernel")]
OTHERS = [("dense", "bias"), ("scale",)]


def _get(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def _assert_prox_close(out, expected, p):
    """Zeros exact; nonzeros within one ulp of the update ``expected - p`` (the rounding of
    ``apply_updates``, see the module docs) plus one ulp of the value (XLA may fuse and
    reorder the prox's own arithmetic differently in the transform and the reference).
    """
    out = np.asarray(out)
    expected = np.asarray(expected)
    assert out.dtype == expected.dtype == np.asarray(p).dtype
    zeros = expected == 0
    np.testing.assert_array_equal(out[zeros], 0)
    p64, e64 = np.asarray(p).astype(np.float64), expected.astype(np.float64)
    ulp = np.spacing(np.abs(e64 - p64).astype(out.dtype)).astype(np.float64)
    ulp += np.spacing(np.abs(expected)).astype(np.float64)
    err = np.abs(out.astype(np.float64) - e64)
    assert np.all(err <= ulp), np.max(err / ulp)


def _one_step(tx, params, grads):
    state = tx.init(params)
    updates, _ = tx.update(grads, state, params)
    return optax.apply_updates(params, updates)


# --------------------------------------------------------------------------- one step


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize(("name", "factory", "prox", "kwargs", "lam", "_"), FACTORIES, ids=IDS)
def test_step_matches_prox(name, factory, prox, kwargs, lam, _, dtype):
    """sgd + X(lam, learning_rate=eta) is prox(p - eta g, eta, lam), jitted, on a pytree."""
    p = jax.tree.map(lambda x: x.astype(dtype), P)
    g = jax.tree.map(lambda x: x.astype(dtype), G)
    tx = optax.chain(optax.sgd(ETA), _make(factory, kwargs, lam, learning_rate=ETA))
    out = jax.jit(functools.partial(_one_step, tx))(p, g)
    # Under jit, XLA may fuse p - eta * g into one FMA (on CPU it does), so the
    # reference is jitted too: same p - eta * g, then the prox.
    ref = jax.jit(lambda pk, gk: prox(pk - ETA * gk, ETA, lam, **kwargs))
    n_zero = 0
    for path in KERNELS:
        pk, gk = _get(p, path), _get(g, path)
        expected = ref(pk, gk)
        _assert_prox_close(_get(out, path), expected, pk)
        n_zero += int(jnp.sum(expected == 0))
        assert _get(out, path).dtype == dtype
    # The check is only meaningful if the prox both zeroes and keeps entries.
    assert 0 < n_zero < P["dense"]["kernel"].size + P["conv"]["kernel"].size
    # Leaves outside the default mask get SGD's update, bit for bit.
    upd = jax.jit(lambda g, p: tx.update(g, tx.init(p), p)[0])(g, p)
    sgd_upd = optax.sgd(ETA).update(g, optax.sgd(ETA).init(p))[0]
    for path in OTHERS:
        np.testing.assert_array_equal(_get(upd, path), _get(sgd_upd, path))

    if dtype == jnp.float32:
        # Without learning_rate the prox step is 1.0.
        tx1 = optax.chain(optax.sgd(ETA), _make(factory, kwargs, lam * ETA))
        out1 = jax.jit(functools.partial(_one_step, tx1))(p, g)
        ref1 = jax.jit(lambda pk, gk: prox(pk - ETA * gk, 1.0, lam * ETA, **kwargs))
        for path in KERNELS:
            pk, gk = _get(p, path), _get(g, path)
            _assert_prox_close(_get(out1, path), ref1(pk, gk), pk)


@pytest.mark.parametrize(
    ("name", "factory", "prox", "kwargs", "lam", "_"),
    [FACTORIES[2], FACTORIES[5], FACTORIES[8], FACTORIES[12]],
    ids=[IDS[2], IDS[5], IDS[8], IDS[12]],
)
def test_after_adam(name, factory, prox, kwargs, lam, _):
    adam = optax.adam(ETA)
    tx = optax.chain(optax.adam(ETA), _make(factory, kwargs, lam, learning_rate=ETA))
    p, s, s_adam = P, tx.init(P), adam.init(P)
    for i in range(3):
        g = jax.tree.map(lambda x, i=i: x * (1.0 + i), G)
        u_adam, s_adam = adam.update(g, s_adam, p)
        upd, s = tx.update(g, s, p)
        new_p = optax.apply_updates(p, upd)
        for path in KERNELS:
            pk = _get(p, path)
            expected = prox(pk + _get(u_adam, path), ETA, lam, **kwargs)
            _assert_prox_close(_get(new_p, path), expected, pk)
        p = new_p


# --------------------------------------------------------------------------- schedules


def test_schedules_evaluated_at_step_count():
    lr = optax.linear_schedule(0.1, 0.01, transition_steps=3)
    lam = optax.piecewise_constant_schedule(1.0, {1: 2.0, 2: 0.5})
    tx = optax.chain(optax.sgd(lr), so.soft_threshold(lam, learning_rate=lr))
    # Eager, so that p - lr * g is rounded as in the reference (no FMA).
    step = tx.update
    p, s = P, tx.init(P)
    for k in range(4):
        upd, s = step(G, s, p)
        new_p = optax.apply_updates(p, upd)
        lr_k, lam_k = lr(k), lam(k)
        pk = p["dense"]["kernel"]
        expected = so.prox_l1(pk - lr_k * G["dense"]["kernel"], lr_k, lam_k)
        _assert_prox_close(new_p["dense"]["kernel"], expected, pk)
        p = new_p
    assert int(s[1].count) == 4


def test_inject_hyperparams_changes_take_effect():
    tx = optax.inject_hyperparams(so.soft_threshold)(lam=1.0, learning_rate=ETA)
    step = jax.jit(tx.update)
    s = tx.init(P)
    upd, s = step(G, s, P)
    pk, gk = P["dense"]["kernel"], G["dense"]["kernel"]
    # No optimizer in front: the incoming updates are G itself.
    _assert_prox_close(pk + upd["dense"]["kernel"], so.prox_l1(pk + gk, ETA, 1.0), pk)
    s.hyperparams["lam"] = jnp.asarray(7.0)
    upd, s = step(G, s, P)
    _assert_prox_close(pk + upd["dense"]["kernel"], so.prox_l1(pk + gk, ETA, 7.0), pk)

    with pytest.raises(TypeError, match="static_args"):
        optax.inject_hyperparams(so.group_lasso)(lam=1.0).init(P)
    tx = optax.inject_hyperparams(so.group_lasso, static_args=("axis", "mask"))(lam=1.0)
    s = tx.init(P)
    s.hyperparams["lam"] = jnp.asarray(4.0)
    upd, _ = jax.jit(tx.update)(G, s, P)
    _assert_prox_close(pk + upd["dense"]["kernel"], so.prox_group_lasso(pk + gk, 1.0, 4.0), pk)


def test_inject_hyperparams_of_proximal():
    # optax binds proximal's signature and hands the prox's keyword arguments back as
    # one keyword named prox_kwargs; they must still reach the prox.
    tx = optax.inject_hyperparams(so.proximal, static_args="prox_fn")(
        prox_fn=so.prox_tl1, lam=1.0, a=2.0
    )
    s = tx.init(P)
    s.hyperparams["lam"] = jnp.asarray(3.0)
    upd, _ = jax.jit(tx.update)(G, s, P)
    pk, gk = P["dense"]["kernel"], G["dense"]["kernel"]
    want = so.prox_tl1(pk + gk, 1.0, 3.0, a=2.0)
    assert not np.allclose(want, so.prox_tl1(pk + gk, 1.0, 3.0, a=1.0))
    _assert_prox_close(pk + upd["dense"]["kernel"], want, pk)
    tx0 = optax.inject_hyperparams(so.proximal, static_args="prox_fn")(prox_fn=so.prox_l1, lam=1.0)
    upd0, _ = tx0.update(G, tx0.init(P), P)
    _assert_prox_close(pk + upd0["dense"]["kernel"], so.prox_l1(pk + gk, 1.0, 1.0), pk)


# --------------------------------------------------------------------------- masks


def _updates(tx, params=P, grads=G):
    return tx.update(grads, tx.init(params), params)[0]


@pytest.mark.parametrize(
    "mask",
    [
        {"dense": {"kernel": False, "bias": True}, "conv": {"kernel": True}, "scale": False},
        {"dense": False, "conv": True, "scale": False},  # a prefix of the params tree
        lambda params: {"dense": False, "conv": True, "scale": False},
    ],
    ids=["full", "prefix", "callable"],
)
def test_explicit_mask(mask):
    upd = _updates(so.soft_threshold(3.0, mask=mask))
    # Unselected: the incoming update unchanged, bit for bit.
    np.testing.assert_array_equal(upd["dense"]["kernel"], G["dense"]["kernel"])
    np.testing.assert_array_equal(upd["scale"], G["scale"])
    x = P["conv"]["kernel"] + G["conv"]["kernel"]
    _assert_prox_close(
        P["conv"]["kernel"] + upd["conv"]["kernel"], so.prox_l1(x, 1.0, 3.0), P["conv"]["kernel"]
    )
    bias_selected = not callable(mask) and mask["dense"] not in (False,)
    bias = P["dense"]["bias"] + upd["dense"]["bias"]
    if bias_selected:
        _assert_prox_close(
            bias, so.prox_l1(P["dense"]["bias"] + G["dense"]["bias"], 1.0, 3.0), bias
        )
    else:
        np.testing.assert_array_equal(upd["dense"]["bias"], G["dense"]["bias"])


def test_inside_optax_masked():
    inner = so.half_threshold(2.0)
    tx = optax.masked(
        inner, {"dense": {"kernel": True, "bias": False}, "conv": False, "scale": False}
    )
    upd = jax.jit(lambda g, p: tx.update(g, tx.init(p), p)[0])(G, P)
    pk = P["dense"]["kernel"]
    # prox_half's Newton steps round differently once XLA fuses them: reference jitted too.
    expected = jax.jit(so.prox_half)(pk + G["dense"]["kernel"], 1.0, 2.0)
    _assert_prox_close(pk + upd["dense"]["kernel"], expected, pk)
    np.testing.assert_array_equal(upd["conv"]["kernel"], G["conv"]["kernel"])
    np.testing.assert_array_equal(upd["dense"]["bias"], G["dense"]["bias"])


def test_errors():
    tx = so.soft_threshold(1.0)
    with pytest.raises(ValueError, match="params"):
        tx.update(G, tx.init(P))
    with pytest.raises(ValueError, match="lam"):
        so.half_threshold(-1.0)
    with pytest.raises(ValueError, match="learning_rate"):
        so.soft_threshold(1.0, learning_rate=-0.1)
    with pytest.raises(ValueError, match="a"):
        so.transformed_l1(1.0, a=0.0)
    with pytest.raises(ValueError, match="rho"):
        so.capped_l1(1.0, rho=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        so.mcp(1.0, gamma=1.0)
    with pytest.raises(ValueError, match="alpha"):
        so.sparse_group_lasso(1.0, alpha=1.5)
    with pytest.raises(ValueError, match="mu"):
        so.l1_exclusive(1.0, mu=-0.5)
    with pytest.raises(TypeError, match="axis"):
        so.group_lasso(1.0, axis=1.0)
    with pytest.raises(ValueError, match="update_every"):
        so.admm(so.prox_l0, 1.0, 1.0, update_every=0)
    with pytest.raises(ValueError, match="rho"):
        so.admm(so.prox_l0, 1.0, 0.0)
    with pytest.raises(ValueError, match="params"):
        a = so.admm(so.prox_l0, 1.0, 1.0)
        a.update(G, a.init(P))


# --------------------------------------------------------------------------- wrappers


def test_multisteps():
    tx = optax.MultiSteps(optax.chain(optax.sgd(ETA), so.soft_threshold(2.0, learning_rate=ETA)), 2)
    s = tx.init(P)
    g2 = jax.tree.map(lambda x: -0.5 * x, G)
    upd, s = tx.update(G, s, P)
    np.testing.assert_array_equal(upd["dense"]["kernel"], 0)
    upd, s = tx.update(g2, s, P)
    # The same accumulation with plain SGD gives the point the prox must be applied to.
    ref = optax.MultiSteps(optax.sgd(ETA), 2)
    s_ref = ref.init(P)
    s_ref = ref.update(G, s_ref, P)[1]
    u_ref = ref.update(g2, s_ref, P)[0]["dense"]["kernel"]
    pk = P["dense"]["kernel"]
    _assert_prox_close(pk + upd["dense"]["kernel"], so.prox_l1(pk + u_ref, ETA, 2.0), pk)


def test_nnx_optimizer():
    model = nnx.Linear(8, 6, rngs=nnx.Rngs(0))
    tx = optax.chain(optax.sgd(ETA), so.soft_threshold(0.5, learning_rate=ETA))
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
    k0, b0 = model.kernel[...], model.bias[...]
    gk, gb = G["dense"]["kernel"], G["dense"]["bias"]

    @nnx.jit
    def step(model, opt):
        grads = nnx.grad(lambda m: jnp.sum(m.kernel[...] * gk) + jnp.sum(m.bias[...] * gb))(model)
        opt.update(model, grads)

    step(model, opt)
    _assert_prox_close(model.kernel[...], so.prox_l1(k0 - ETA * gk, ETA, 0.5), k0)
    np.testing.assert_array_equal(model.bias[...], b0 - ETA * gb)


def test_train_state():
    tx = optax.chain(optax.sgd(ETA), so.hard_threshold(2.0, learning_rate=ETA))
    st = train_state.TrainState.create(apply_fn=None, params=P, tx=tx)
    st = jax.jit(lambda st: st.apply_gradients(grads=G))(st)
    pk = P["conv"]["kernel"]
    _assert_prox_close(
        st.params["conv"]["kernel"], so.prox_l0(pk - ETA * G["conv"]["kernel"], ETA, 2.0), pk
    )


@pytest.mark.parametrize("inner", ["momentum", "adam"])
def test_exact_zeros_survive(inner):
    opt = optax.sgd(ETA, momentum=0.9) if inner == "momentum" else optax.adam(ETA)
    ref = optax.sgd(ETA, momentum=0.9) if inner == "momentum" else optax.adam(ETA)
    tx = optax.chain(opt, so.half_threshold(0.3, learning_rate=ETA))
    step = tx.update  # eager: the reference's p + u is then rounded the same way
    p, s, s_ref = P, tx.init(P), ref.init(P)
    for k in range(6):
        g = jax.tree.map(lambda x, k=k: x * np.cos(k), G)
        u_ref, s_ref = ref.update(g, s_ref, p)
        upd, s = step(g, s, p)
        new_p = optax.apply_updates(p, upd)
        for path in KERNELS:
            pk = _get(p, path)
            expected = so.prox_half(pk + _get(u_ref, path), ETA, 0.3)
            _assert_prox_close(_get(new_p, path), expected, pk)
        p = new_p
    assert float(so.sparsity(p).overall) > 0.1


# --------------------------------------------------------------------------- training


class _MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(4)(nn.tanh(nn.Dense(32)(x)))


def _regression():
    kx, kw, kp = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (256, 16))
    # Only 4 of the 16 inputs matter, so a sparse network fits as well as a dense one.
    w = jnp.zeros((16, 4)).at[:4].set(jax.random.normal(kw, (4, 4)))
    model = _MLP()
    return model, model.init(kp, x[:1])["params"], x, x @ w


@pytest.mark.parametrize(("name", "factory", "prox", "kwargs", "_", "lam"), FACTORIES, ids=IDS)
def test_training_drives_sparsity_up(name, factory, prox, kwargs, _, lam):
    model, params, x, y = _regression()
    eta = 0.05
    kw = dict(kwargs)
    if "axis" in kw:
        kw["axis"] = -2  # prune input rows: 12 of the 16 inputs are noise
    tx = optax.chain(optax.sgd(eta), factory(lam, **kw, learning_rate=eta))
    st = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)

    def loss_fn(params):
        return jnp.mean((model.apply({"params": params}, x) - y) ** 2)

    @jax.jit
    def train(st):
        def body(st, _):
            loss, g = jax.value_and_grad(loss_fn)(st.params)
            kernel = st.params["Dense_0"]["kernel"]
            return st.apply_gradients(grads=g), (loss, so.sparsity(kernel).overall)

        return jax.lax.scan(body, st, None, length=200)

    st, (losses, sparsities) = train(st)
    stats = so.sparsity(st.params)
    assert float(sparsities[0]) == 0.0
    assert float(stats.overall) > 0.05, float(stats.overall)
    assert float(sparsities[100]) > 0.0
    assert float(losses[-1]) < 0.3 * float(losses[0]), (float(losses[0]), float(losses[-1]))
    # Biases are outside the default mask.
    assert float(stats.per_leaf["Dense_0"]["bias"]) < 0.5


# --------------------------------------------------------------------------- sparsity


def test_sparsity_summary():
    k = jnp.ones((3, 4)).at[:, 1].set(0.0).at[2, :].set(0.0)
    conv = jnp.ones((2, 2, 3, 5)).at[..., 0].set(0.0)
    params = {"k": k, "conv": conv, "b": jnp.array([0.0, 1.0])}
    stats = jax.jit(so.sparsity)(params)
    n_zero = (3 + 4 - 1) + 12 + 1
    np.testing.assert_allclose(stats.overall, n_zero / (12 + 60 + 2), rtol=1e-6)
    np.testing.assert_allclose(stats.per_leaf["k"], 6 / 12, rtol=1e-6)
    np.testing.assert_allclose(stats.per_leaf["b"], 0.5)
    assert int(stats.zero_units["k"]) == 1
    assert int(stats.zero_inputs["k"]) == 1
    assert int(stats.zero_units["conv"]) == 1
    assert int(stats.zero_inputs["conv"]) == 0
    assert stats.zero_units["b"] is None


# --------------------------------------------------------------------------- ADMM


def test_admm_l0_beats_magnitude_pruning():
    key = jax.random.PRNGKey(3)
    ka, kx, kn = jax.random.split(key, 3)
    n, d, k = 50, 40, 6
    # Correlated features make magnitudes of the dense fit a poor guide to the support.
    base = jax.random.normal(ka, (n, d))
    a = base + 2.0 * jax.random.normal(kx, (n, 1))
    w_true = jnp.zeros((d, 1)).at[:k].set(jnp.array([[2.0], [-1.5], [1.0], [-1.0], [0.8], [0.6]]))
    b = a @ w_true + 0.3 * jax.random.normal(kn, (n, 1))

    def loss(params):
        return 0.5 * jnp.mean((a @ params["w"] - b) ** 2)

    params = {"w": jnp.zeros((d, 1))}
    rho, lam = 1.0, 0.02
    tx = optax.chain(so.admm(so.prox_l0, lam, rho, update_every=10), optax.adam(0.05))

    @jax.jit
    def train(params, state):
        def body(carry, _):
            params, state = carry
            g = jax.grad(loss)(params)
            upd, state = tx.update(g, state, params)
            return (optax.apply_updates(params, upd), state), None

        return jax.lax.scan(body, (params, state), None, length=1500)[0]

    params, state = train(params, tx.init(params))
    z = so.admm_params(state, params)["w"]
    nnz = int(jnp.sum(z != 0))
    assert nnz <= k, nnz  # the requested sparsity: at most k of d weights
    assert nnz >= 1

    # One-shot magnitude pruning of the dense least-squares fit to the same sparsity.
    dense = jnp.linalg.lstsq(a, b)[0]
    thresh = jnp.sort(jnp.abs(dense[:, 0]))[-nnz]
    pruned = jnp.where(jnp.abs(dense) >= thresh, dense, 0.0)
    assert int(jnp.sum(pruned != 0)) == nnz
    assert float(loss({"w": z})) < 0.5 * float(loss({"w": pruned}))


@pytest.mark.parametrize("every", [1, 3])
def test_admm_matches_unscaled_textbook_admm_with_a_rho_schedule(every):
    # Reference: ADMM in the unscaled form (dual y, Boyd et al. 2011, sec. 3.1) for
    # f(p) + lam R(z) s.t. p = z, with the p-step one SGD step on the augmented
    # Lagrangian. The transform keeps the scaled dual u = y / rho instead, so a growing
    # rho only agrees with this if u is rescaled whenever rho changes.
    def rho(k):
        return 0.5 * 1.25 ** jnp.asarray(k, jnp.float32)

    def lam(k):
        return 0.02 + 0.001 * jnp.asarray(k, jnp.float32)

    lr, steps = 0.1, 10
    key = jax.random.PRNGKey(0)
    p0 = jax.random.normal(key, (4, 5))
    grads = jax.random.normal(jax.random.PRNGKey(1), (steps, 4, 5))

    tx = optax.chain(so.admm(so.prox_l1, lam, rho, update_every=every), optax.sgd(lr))
    params = {"w": p0}
    state = tx.init(params)
    for k in range(steps):
        upd, state = tx.update({"w": grads[k]}, state, params)
        params = optax.apply_updates(params, upd)

    p = np.asarray(p0, np.float64)
    z = np.asarray(so.prox_l1(p0, 1.0 / rho(0), lam(0)), np.float64)
    y = np.zeros_like(p)
    for k in range(steps):
        r = float(rho(k))
        if k > 0 and k % every == 0:
            z = np.asarray(so.prox_l1(jnp.asarray(p + y / r), 1.0 / r, lam(k)), np.float64)
            y = y + r * (p - z)
        p = p - lr * (np.asarray(grads[k]) + y + r * (p - z))

    np.testing.assert_allclose(params["w"], p, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state[0].z["w"], z, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state[0].u["w"] * float(rho(steps - 1)), y, rtol=1e-5, atol=1e-5)


def test_keep_zeros_freezes_the_support_and_passes_the_rest():
    params = {
        "w": jnp.array([[0.0, 1.0], [2.0, 0.0]]),
        "b": jnp.array([0.0, 3.0]),
    }
    grads = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    tx = optax.chain(optax.adam(0.1), so.keep_zeros())
    state = tx.init(params)
    p = params
    for _ in range(3):
        upd, state = tx.update(grads, state, p)
        p = optax.apply_updates(p, upd)
    # Zero kernel entries stay exactly zero; nonzero ones and the 1-D bias move.
    assert p["w"][0, 0] == 0 and p["w"][1, 1] == 0
    assert p["w"][0, 1] != 1.0 and p["w"][1, 0] != 2.0
    assert p["b"][0] != 0  # biases are not masked by default
    with pytest.raises(ValueError, match="parameters"):
        so.keep_zeros().update(grads, optax.EmptyState(), None)
