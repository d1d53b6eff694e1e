"""Small reference networks (LeNet-300-100, LeNet-5-Caffe) in Flax NNX and Linen.

Widths are constructor arguments / dataclass fields so that a compacted network can be
rebuilt from its new widths. Images are NHWC; the MLPs flatten whatever follows the
batch axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
from flax import nnx

__all__ = ["LeNet300100", "LeNet300100Linen", "LeNet5Caffe", "LeNet5CaffeLinen", "max_pool_2x2"]


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max pooling, stride 2, VALID (an odd last row/column is dropped), NHWC.

    Same values as ``max_pool(x, (2, 2), (2, 2))``, written as a reshape and a max:
    the gradient of ``reduce_window`` is ``select_and_scatter``, which XLA:CPU runs
    slowly (it took half of a LeNet-5 training step on CPU; this form halves the step).
    """
    n, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2]
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class LeNet300100(nnx.Module):
    """MLP ``in_features -> hidden[0] -> relu -> hidden[1] -> relu -> num_classes``."""

    def __init__(
        self,
        in_features: int = 784,
        hidden: Sequence[int] = (300, 100),
        num_classes: int = 10,
        *,
        rngs: nnx.Rngs,
    ):
        h1, h2 = hidden
        self.fc1 = nnx.Linear(in_features, h1, rngs=rngs)
        self.fc2 = nnx.Linear(h1, h2, rngs=rngs)
        self.fc3 = nnx.Linear(h2, num_classes, rngs=rngs)

    @property
    def hidden(self) -> tuple[int, int]:
        # Derived from the layers so it stays right after compaction.
        return (self.fc1.out_features, self.fc2.out_features)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        x = nnx.relu(self.fc1(x))
        x = nnx.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5Caffe(nnx.Module):
    """Caffe LeNet-5: conv5x5(20) - pool - conv5x5(50) - pool - dense(500) - dense(10).

    Expects NHWC ``(N, 28, 28, in_channels)``; with VALID convolutions the flattened
    feature map is ``4 * 4 * features[1]`` (800 for the default widths).
    """

    def __init__(
        self,
        features: Sequence[int] = (20, 50, 500),
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 28,
        *,
        rngs: nnx.Rngs,
    ):
        c1, c2, h = features
        side = ((image_size - 4) // 2 - 4) // 2
        self.conv1 = nnx.Conv(in_channels, c1, (5, 5), padding="VALID", rngs=rngs)
        self.conv2 = nnx.Conv(c1, c2, (5, 5), padding="VALID", rngs=rngs)
        self.fc1 = nnx.Linear(side * side * c2, h, rngs=rngs)
        self.fc2 = nnx.Linear(h, num_classes, rngs=rngs)

    @property
    def features(self) -> tuple[int, int, int]:
        return (self.conv1.out_features, self.conv2.out_features, self.fc1.out_features)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = max_pool_2x2(nnx.relu(self.conv1(x)))
        x = max_pool_2x2(nnx.relu(self.conv2(x)))
        x = x.reshape(x.shape[0], -1)
        x = nnx.relu(self.fc1(x))
        return self.fc2(x)


class LeNet300100Linen(nn.Module):
    """Linen twin of :class:`LeNet300100`; rebuild smaller with ``clone(hidden=...)``."""

    hidden: Sequence[int] = (300, 100)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(self.hidden[0], name="fc1")(x))
        x = nn.relu(nn.Dense(self.hidden[1], name="fc2")(x))
        return nn.Dense(self.num_classes, name="fc3")(x)

    def compaction_rebuild(self, widths: Mapping[str, int]) -> LeNet300100Linen:
        """The module for compacted variables (see :func:`sparse_optax.compact_linen`)."""
        return self.clone(hidden=(widths["fc1"], widths["fc2"]))


class LeNet5CaffeLinen(nn.Module):
    """Linen twin of :class:`LeNet5Caffe`; rebuild smaller with ``clone(features=...)``."""

    features: Sequence[int] = (20, 50, 500)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c1, c2, h = self.features
        x = max_pool_2x2(nn.relu(nn.Conv(c1, (5, 5), padding="VALID", name="conv1")(x)))
        x = max_pool_2x2(nn.relu(nn.Conv(c2, (5, 5), padding="VALID", name="conv2")(x)))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(h, name="fc1")(x))
        return nn.Dense(self.num_classes, name="fc2")(x)

    def compaction_rebuild(self, widths: Mapping[str, int]) -> LeNet5CaffeLinen:
        """The module for compacted variables (see :func:`sparse_optax.compact_linen`)."""
        return self.clone(features=(widths["conv1"], widths["conv2"], widths["fc1"]))
