"""Tests for sparse_optax.data: IDX parsing, lookup order, downloads, errors.

Everything runs on tiny synthetic IDX files in tmp dirs; "downloads" are served
from ``file://`` URLs, so no test touches the network.  The real-data tests run
only where ``$SPARSE_OPTAX_DATA`` holds the real files.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from sparse_optax import data
from sparse_optax.data import (
    ENV_VAR,
    FILES,
    ChecksumError,
    CorruptDatasetError,
    DatasetNotFoundError,
    load_dataset,
    read_idx,
    train_val_split,
)

# Read before the autouse fixture clears the variable for the synthetic tests.
_REAL_DATA = os.environ.get(ENV_VAR)


def _idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 + arr.ndim
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.tobytes()


def _write_idx(path: Path, arr: np.ndarray, magic: int | None = None) -> None:
    path.write_bytes(gzip.compress(_idx_bytes(arr, magic)))


def _make_dir(directory: Path, n_train: int = 12, n_test: int = 6, seed: int = 0) -> dict:
    """Writes the four files of a small random dataset; returns the uint8 arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        FILES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        FILES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        FILES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        FILES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for fname, arr in arrays.items():
        _write_idx(directory / fname, arr)
    return arrays


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No env var, a private cache dir, and mirrors that cannot reach the network."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    cache_home = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    nowhere = (tmp_path / "no-mirror").as_uri() + "/"
    monkeypatch.setattr(data, "_MIRRORS", {"mnist": (nowhere,), "fashion_mnist": (nowhere,)})
    return cache_home / "sparse_optax"


# --- parsing ---------------------------------------------------------------


def test_read_idx_roundtrip(tmp_path: Path) -> None:
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    labels = np.array([3, 1, 4], dtype=np.uint8)
    _write_idx(tmp_path / "i.gz", images)
    _write_idx(tmp_path / "l.gz", labels)
    (tmp_path / "raw").write_bytes(_idx_bytes(labels))  # uncompressed works too
    np.testing.assert_array_equal(read_idx(tmp_path / "i.gz"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "l.gz"), labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "raw"), labels)


def test_load_converts_dtypes_and_shapes(tmp_path: Path) -> None:
    arrays = _make_dir(tmp_path / "d" / "mnist")
    ds = load_dataset("mnist", data_dir=tmp_path / "d", download=False, verify=False)
    assert ds.x_train.shape == (12, 28, 28, 1) and ds.x_test.shape == (6, 28, 28, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.y_test.dtype == np.int32
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays[FILES[0]].astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.y_train, arrays[FILES[1]])
    np.testing.assert_array_equal(ds.x_test[..., 0], arrays[FILES[2]].astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.y_test, arrays[FILES[3]])
    assert ds.name == "mnist" and ds.eval_split == "test" and ds.num_classes == 10
    assert ds.source == str((tmp_path / "d" / "mnist").resolve())
    assert "train=(12, 28, 28, 1)" in repr(ds)


def test_flat_layout_and_fashion_aliases(tmp_path: Path) -> None:
    _make_dir(tmp_path / "flat")
    _make_dir(tmp_path / "nested" / "fashion-mnist")
    for name in ("fashion_mnist", "fashion-mnist", "Fashion-MNIST"):
        ds = load_dataset(name, data_dir=tmp_path / "nested", download=False, verify=False)
        assert ds.name == "fashion_mnist"
        assert ds.source.endswith("fashion-mnist")
    ds = load_dataset("mnist", data_dir=tmp_path / "flat", download=False, verify=False)
    assert ds.source == str((tmp_path / "flat").resolve())
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar10", download=False)


# --- lookup order ----------------------------------------------------------


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    # Sizes tell the three copies apart.
    _make_dir(tmp_path / "arg" / "mnist", n_train=3)
    _make_dir(tmp_path / "env" / "mnist", n_train=4)
    _make_dir(isolated / "mnist", n_train=5)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))

    def n_train(**kwargs) -> int:
        return load_dataset("mnist", download=False, verify=False, **kwargs).x_train.shape[0]

    assert n_train(data_dir=tmp_path / "arg") == 3
    assert n_train() == 4
    # A data_dir without the files falls through to the next place.
    assert n_train(data_dir=tmp_path / "empty") == 4
    monkeypatch.delenv(ENV_VAR)
    assert n_train() == 5


def test_env_var_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _make_dir(tmp_path / "shared" / "data" / "mnist")
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.setenv(ENV_VAR, "../shared/data")
    ds = load_dataset("mnist", download=False, verify=False)
    assert ds.source == str((tmp_path / "shared" / "data" / "mnist").resolve())


def test_not_found_lists_every_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    partial = tmp_path / "env" / "mnist"
    _make_dir(partial)
    (partial / FILES[3]).unlink()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", data_dir=tmp_path / "arg", download=False)
    assert isinstance(info.value, FileNotFoundError)
    msg = str(info.value)
    for place in (
        tmp_path / "arg" / "mnist",
        tmp_path / "arg",
        partial,
        tmp_path / "env",
        isolated / "mnist",
    ):
        assert f"  - {place}  (" in msg
    assert f"missing {FILES[3]}" in msg
    assert "download=False" in msg
    assert f"{ENV_VAR}=/path/to/data" in msg
    assert str(isolated / "mnist") + "/" in msg


def test_not_found_when_env_unset_and_offline(isolated: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion_mnist")  # download=True, but the mirror is a missing file:// dir
    msg = str(info.value)
    assert f"${ENV_VAR} is not set" in msg
    assert "Downloading into" in msg and "failed" in msg
    assert str(isolated / "fashion-mnist") in msg


# --- corrupt files ---------------------------------------------------------


@pytest.mark.parametrize(
    "damage, match",
    [
        ("bad_magic", "bad IDX magic number"),
        ("labels_as_images", "magic number 2049, expected 2051"),
        ("truncated", "truncated or corrupt"),
        ("bad_gzip", "not a valid gzip file"),
        ("count_mismatch", "labels for 12 images"),
        ("label_out_of_range", "outside 0..9"),
    ],
)
def test_corrupt_files_raise(tmp_path: Path, damage: str, match: str) -> None:
    d = tmp_path / "mnist"
    arrays = _make_dir(d)
    images, labels = d / FILES[0], d / FILES[1]
    if damage == "bad_magic":
        _write_idx(images, arrays[FILES[0]], magic=0x12345678)
    elif damage == "labels_as_images":
        _write_idx(images, arrays[FILES[1]])
    elif damage == "truncated":
        images.write_bytes(gzip.compress(_idx_bytes(arrays[FILES[0]])[:-5]))
    elif damage == "bad_gzip":
        images.write_bytes(gzip.compress(_idx_bytes(arrays[FILES[0]]))[:-20])
    elif damage == "count_mismatch":
        _write_idx(labels, arrays[FILES[1]][:-1])
    elif damage == "label_out_of_range":
        _write_idx(labels, np.full(12, 10, dtype=np.uint8))
    with pytest.raises(CorruptDatasetError, match=match):
        load_dataset("mnist", data_dir=tmp_path, download=False, verify=False)


def test_verify_rejects_non_standard_files(tmp_path: Path) -> None:
    _make_dir(tmp_path / "mnist")
    with pytest.raises(ChecksumError, match="verify=False"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_wrong_dataset_in_flat_dir_is_detected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Make the synthetic files "be" MNIST, then ask for Fashion-MNIST from the same dir.
    _make_dir(tmp_path / "flat")
    raw = {
        f: hashlib.sha256(gzip.decompress((tmp_path / "flat" / f).read_bytes())).hexdigest()
        for f in FILES
    }
    monkeypatch.setitem(data._SHA256_RAW, "mnist", raw)
    ds = load_dataset("mnist", data_dir=tmp_path / "flat", download=False)  # verify passes
    assert ds.x_train.shape[0] == 12
    with pytest.raises(CorruptDatasetError, match="holds MNIST train-images"):
        load_dataset("fashion_mnist", data_dir=tmp_path / "flat", download=False, verify=False)


# --- downloads (file:// mirrors) -------------------------------------------


def _serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, good_sums: bool) -> dict:
    arrays = _make_dir(tmp_path / "mirror")
    sums = {f: hashlib.sha256((tmp_path / "mirror" / f).read_bytes()).hexdigest() for f in FILES}
    if not good_sums:
        sums[FILES[0]] = "0" * 64
    monkeypatch.setitem(data._SHA256_GZ, "mnist", sums)
    # The first mirror is missing, so the loader must fall back to the second.
    mirrors = ((tmp_path / "dead").as_uri() + "/", (tmp_path / "mirror").as_uri() + "/")
    monkeypatch.setitem(data._MIRRORS, "mnist", mirrors)
    return arrays


def test_download_into_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    arrays = _serve(tmp_path, monkeypatch, good_sums=True)
    ds = load_dataset("mnist", verify=False)
    cache = isolated / "mnist"
    assert ds.source == str(cache.resolve())
    assert sorted(p.name for p in cache.iterdir()) == sorted(FILES)  # no *.part left over
    np.testing.assert_array_equal(ds.y_train, arrays[FILES[1]])
    # The second call is served from the cache, even with the mirrors gone.
    monkeypatch.setitem(data._MIRRORS, "mnist", ())
    assert load_dataset("mnist", download=False, verify=False).source == ds.source


def test_download_fetches_only_missing_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    _serve(tmp_path, monkeypatch, good_sums=True)
    cache = isolated / "mnist"
    cache.mkdir(parents=True)
    kept = cache / FILES[1]
    kept.write_bytes((tmp_path / "mirror" / FILES[1]).read_bytes())
    before = kept.stat().st_mtime_ns
    os.utime(kept, ns=(before - 10**9, before - 10**9))
    load_dataset("mnist", verify=False)
    assert kept.stat().st_mtime_ns == before - 10**9


def test_download_checksum_mismatch_deletes_and_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    _serve(tmp_path, monkeypatch, good_sums=False)
    with pytest.raises(ChecksumError, match="failed its checksum"):
        load_dataset("mnist", verify=False)
    cache = isolated / "mnist"
    assert not any(cache.iterdir())  # neither the file nor its temp copy remains


# --- splits and fallback ---------------------------------------------------


def test_train_val_split(tmp_path: Path) -> None:
    _make_dir(tmp_path / "mnist", n_train=50)
    ds = load_dataset("mnist", data_dir=tmp_path, download=False, verify=False)
    tv = train_val_split(ds, n_val=10, seed=3)
    assert tv.eval_split == "val" and "val=(10, 28, 28, 1)" in repr(tv)
    assert tv.x_train.shape[0] == 40 and tv.x_test.shape[0] == 10
    # Together the parts are the training set, each example exactly once.
    flat = ds.x_train.reshape(50, -1)
    idx = {flat[i].tobytes(): i for i in range(50)}
    parts = [idx[r.tobytes()] for r in np.concatenate([tv.x_train, tv.x_test]).reshape(50, -1)]
    assert sorted(parts) == list(range(50))
    np.testing.assert_array_equal(
        np.concatenate([tv.y_train, tv.y_test]), ds.y_train[np.array(parts)]
    )
    again = train_val_split(ds, n_val=10, seed=3)
    np.testing.assert_array_equal(again.x_test, tv.x_test)
    assert not np.array_equal(train_val_split(ds, n_val=10, seed=4).x_test, tv.x_test)
    with pytest.raises(ValueError, match="n_val"):
        train_val_split(ds, n_val=50)


def test_digits_fallback() -> None:
    pytest.importorskip("sklearn", reason="scikit-learn not installed (pip install '.[demo]')")
    ds = data.load_digits_fallback()
    assert ds.x_train.shape == (1438, 8, 8, 1) and ds.x_test.shape == (359, 8, 8, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    np.testing.assert_array_equal(data.load_digits_fallback().y_test, ds.y_test)


def test_digits_fallback_without_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry makes the import fail as if the package were absent.
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"sparse_optax\[demo\]"):
        data.load_digits_fallback()


# --- the real files, where available ---------------------------------------


def _real_dir(subdir: str) -> Path:
    if not _REAL_DATA:
        pytest.skip(f"${ENV_VAR} is not set; the real-data checks need the IDX files")
    d = Path(_REAL_DATA) / subdir
    if not all((d / f).is_file() for f in FILES):
        pytest.skip(f"${ENV_VAR}={_REAL_DATA} does not hold the four {subdir} files")
    return d


def test_real_mnist() -> None:
    _real_dir("mnist")
    ds = load_dataset("mnist", data_dir=_REAL_DATA, download=False)  # verify=True
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    train_counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(ds.y_train, minlength=10).tolist() == train_counts
    assert np.bincount(ds.y_test, minlength=10).tolist() == test_counts


def test_real_fashion_mnist() -> None:
    _real_dir("fashion-mnist")
    ds = load_dataset("fashion-mnist", data_dir=_REAL_DATA, download=False)
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(ds.y_test, minlength=10).tolist() == [1000] * 10
