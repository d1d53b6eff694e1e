"""The demo's whole pipeline on real MNIST (one short epoch), and its saved model."""

from __future__ import annotations

import numpy as np
import pytest

from sparse_optax import data as data_lib
from sparse_optax import demo


def _have_mnist() -> bool:
    try:
        data_lib.load_dataset("mnist", download=False)
    except data_lib.DatasetNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _have_mnist(), reason="MNIST not found (set SPARSE_OPTAX_DATA)")
def test_demo_trains_compacts_and_saves(tmp_path, capsys):
    summary = demo.main(["--epochs", "2", "--lam", "2e-3", "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert "epoch  2" in out and "compression" in out
    # A real run: it learned, it is sparse, and compaction removed units.
    assert summary["test_error"] < 0.1
    assert summary["zero_weights"] > 0.5
    assert summary["params_after"] < summary["params_before"]
    assert summary["units_after"][1] < 300
    # The saved model reloads and gives the reported test error on the kept inputs.
    model, kept = demo.load_compacted(tmp_path)
    ds = data_lib.load_dataset("mnist", download=False)
    x = ds.x_test.reshape(len(ds.x_test), -1)[:, kept]
    pred = np.asarray(model(x)).argmax(-1)
    np.testing.assert_allclose(np.mean(pred != ds.y_test), summary["test_error"], atol=1e-9)


def test_demo_falls_back_to_digits_when_offline(monkeypatch, tmp_path, capsys):
    pytest.importorskip("sklearn")
    monkeypatch.setenv("SPARSE_OPTAX_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data_lib, "_MIRRORS", {"mnist": ("file:///nonexistent/",)})
    summary = demo.main(["--epochs", "1", "--out", str(tmp_path / "m"), "--no-progress"])
    err = capsys.readouterr().err
    assert "digits" in err and "nowhere" in err
    assert summary["units_before"][0] == 64
