"""The MNIST benchmark's unit budget (benchmarks/mnist.py), against a per-unit loop."""

import importlib.util
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import sparse_optax as so

_PATH = Path(__file__).parents[1] / "benchmarks" / "mnist.py"


@pytest.fixture(scope="module")
def mnist():
    spec = importlib.util.spec_from_file_location("bench_mnist", _PATH)
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up by name.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _largest(sizes: list[float], cap: int) -> set[int]:
    return set(np.argsort(sizes)[::-1][:cap].tolist())


def _rows_in_use(w) -> set[int]:
    return set(np.flatnonzero(np.any(np.asarray(w) != 0, axis=1)).tolist())


def test_budget_keeps_the_largest_units_of_each_layer(mnist):
    model = mnist._model("lenet300", 0)
    x = jax.random.uniform(jax.random.key(1), (32, 784))
    w1, b1 = np.asarray(model.fc1.kernel.get_value()), np.asarray(model.fc1.bias.get_value())
    w2, b2 = np.asarray(model.fc2.kernel.get_value()), np.asarray(model.fc2.bias.get_value())
    w3 = np.asarray(model.fc3.kernel.get_value())

    mnist._prune_to_budget("lenet300", model, "200:50:20")

    inputs = _largest([np.sum(w1[i] ** 2) for i in range(784)], 200)
    w1 = np.where(np.isin(np.arange(784), list(inputs))[:, None], w1, 0)
    h1 = _largest(
        [np.sum(w2[j] ** 2) * (np.sum(w1[:, j] ** 2) + b1[j] ** 2) for j in range(300)], 50
    )
    w2 = np.where(np.isin(np.arange(300), list(h1))[:, None], w2, 0)
    h2 = _largest(
        [np.sum(w3[j] ** 2) * (np.sum(w2[:, j] ** 2) + b2[j] ** 2) for j in range(100)], 20
    )

    assert _rows_in_use(model.fc1.kernel.get_value()) == inputs
    assert _rows_in_use(model.fc2.kernel.get_value()) == h1
    assert _rows_in_use(model.fc3.kernel.get_value()) == h2
    small, report = so.compact(model, x)
    assert mnist._units("lenet300", small, report.kept_inputs) == [200, 50, 20]
    np.testing.assert_allclose(small(x[:, report.kept_inputs]), model(x), atol=1e-5)


def test_budget_on_conv_filters_drops_their_flattened_rows(mnist):
    # fc1 reads conv2's 4x4x50 map flattened as (row, col, channel): filter c feeds
    # rows c, c + 50, ..., c + 750.
    model = mnist._model("lenet5", 0)
    x = jax.random.uniform(jax.random.key(1), (8, 28, 28, 1))
    k2, b2 = np.asarray(model.conv2.kernel.get_value()), np.asarray(model.conv2.bias.get_value())
    f1 = np.asarray(model.fc1.kernel.get_value())
    sizes = [np.sum(f1[c::50] ** 2) * (np.sum(k2[..., c] ** 2) + b2[c] ** 2) for c in range(50)]

    mnist._prune_to_budget("lenet5", model, "20:30:800:500")

    kept = _largest(sizes, 30)
    rows = np.any(np.asarray(model.fc1.kernel.get_value()) != 0, axis=1)
    np.testing.assert_array_equal(rows, np.isin(np.arange(800) % 50, list(kept)))
    small, _ = so.compact(model, x)
    assert small.features == (20, 30, 500)
    np.testing.assert_allclose(small(x), model(x), atol=1e-5)


@pytest.mark.parametrize("budget", ["266:88", "266:-1:33"])
def test_budget_needs_one_count_per_kind(mnist, budget):
    with pytest.raises(ValueError, match="budget takes 3 counts >= 0"):
        mnist._prune_to_budget("lenet300", mnist._model("lenet300", 0), budget)


def test_distill_loss_mixes_labels_and_tempered_teacher(mnist):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 6)
    teacher = rng.normal(size=(6, 10))
    t, w = 3.0, 0.25
    p_t = np.exp(teacher / t) / np.exp(teacher / t).sum(-1, keepdims=True)
    targets = np.concatenate([np.eye(10)[labels], p_t], axis=-1).astype(np.float32)

    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    ce = -log_softmax(logits.astype(np.float64))[np.arange(6), labels]
    kd = -(p_t * log_softmax(logits.astype(np.float64) / t)).sum(-1)
    want = np.mean((1 - w) * ce + w * t**2 * kd)
    got = mnist._distill_loss(t, w)(logits, targets)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_input_dropout_drops_at_its_rate_and_keeps_the_mean(mnist):
    xb = jax.numpy.ones((200, 784))
    out = np.asarray(mnist._input_dropout(0.3)(jax.random.key(0), xb))
    np.testing.assert_allclose(np.unique(out), [0.0, 1 / 0.7], rtol=1e-6)
    assert abs(np.mean(out == 0) - 0.3) < 0.01
    assert abs(out.mean() - 1.0) < 0.02
    with pytest.raises(ValueError, match="input_dropout"):
        mnist._input_dropout(1.0)
