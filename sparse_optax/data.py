"""MNIST and Fashion-MNIST loaders for the examples, the demo and the benchmarks.

Only the standard library and numpy are used, so the core package keeps its
dependency list.  Files are looked up, in order, in

1. the ``data_dir`` argument,
2. the directory named by ``$SPARSE_OPTAX_DATA``,
3. the user cache, ``$XDG_CACHE_HOME/sparse_optax`` or ``~/.cache/sparse_optax``,

where each directory holds ``mnist/`` and ``fashion-mnist/`` subdirectories with
the four standard ``*-ubyte.gz`` files (for 1 and 2 the files may also sit in the
directory itself).  If none has them and ``download=True``, they are fetched
into the cache from the canonical mirrors and checked against published sha256
sums.

>>> ds = load_dataset("mnist")  # doctest: +SKIP
>>> tune = train_val_split(ds, n_val=5000)  # x_test/y_test now hold validation data
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import logging
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "ChecksumError",
    "CorruptDatasetError",
    "Dataset",
    "DatasetNotFoundError",
    "ENV_VAR",
    "FILES",
    "default_cache_dir",
    "load_dataset",
    "load_digits_fallback",
    "read_idx",
    "train_val_split",
]

logger = logging.getLogger(__name__)

ENV_VAR = "SPARSE_OPTAX_DATA"

#: The four standard file names, shared by MNIST and Fashion-MNIST.
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

# Canonical name -> subdirectory names accepted on disk (the first is the one
# written to when downloading).
_SUBDIRS = {"mnist": ("mnist",), "fashion_mnist": ("fashion-mnist", "fashion_mnist")}
_PRETTY = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}

_MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}


def _by_file(*digests: str) -> dict[str, str]:
    """Pairs digests with :data:`FILES`, in that order."""
    return dict(zip(FILES, digests, strict=True))


# sha256 of the published .gz files: what a download must match byte for byte.
_SHA256_GZ = {
    "mnist": _by_file(
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
    "fashion_mnist": _by_file(
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    ),
}

# sha256 of the *decompressed* IDX bytes, computed from files matching the sums
# above.  Local copies are checked against these rather than the .gz sums
# because re-compressed copies (e.g. Debian's, which strip the gzip header) hold
# the same data under a different .gz hash.
_SHA256_RAW = {
    "mnist": _by_file(
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
    "fashion_mnist": _by_file(
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}

_IMAGES_MAGIC = 2051  # 0x00000803: uint8, 3 dimensions
_LABELS_MAGIC = 2049  # 0x00000801: uint8, 1 dimension
_NUM_CLASSES = 10
_DOWNLOAD_TIMEOUT_S = 30.0


class DatasetNotFoundError(FileNotFoundError):
    """The dataset files are in none of the places looked, and were not downloaded."""


class CorruptDatasetError(ValueError):
    """A dataset file is unreadable or does not hold what its name says."""


class ChecksumError(CorruptDatasetError):
    """A file's sha256 differs from the published one."""


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Train/eval arrays: images float32 in [0, 1] shaped (N, H, W, 1), labels int32.

    ``eval_split`` says what ``x_test``/``y_test`` hold: ``"test"``, or ``"val"``
    after :func:`train_val_split` (so tuning code can stay unchanged and still
    never see the test set).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    source: str
    eval_split: str = "test"

    @property
    def num_classes(self) -> int:
        return _NUM_CLASSES

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        # The default repr would print four large arrays.
        return (
            f"Dataset(name={self.name!r}, train={self.x_train.shape}, "
            f"{self.eval_split}={self.x_test.shape}, source={self.source!r})"
        )


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/sparse_optax``, or ``~/.cache/sparse_optax``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "sparse_optax"


def _canonical_name(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    if key not in _SUBDIRS:
        raise ValueError(f"unknown dataset {name!r}; expected 'mnist' or 'fashion_mnist'.")
    return key


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parse_idx(raw: bytes, path: Path | str) -> np.ndarray:
    """Decodes uncompressed IDX bytes holding uint8 data."""
    if len(raw) < 4:
        raise CorruptDatasetError(f"{path}: {len(raw)} bytes is too short for an IDX header.")
    zero, dtype_code, ndim = int.from_bytes(raw[0:2], "big"), raw[2], raw[3]
    magic = int.from_bytes(raw[0:4], "big")
    # Every file of these datasets is uint8 (type code 0x08); other IDX types
    # would need a dtype table this module has no use for.
    if zero != 0 or dtype_code != 0x08 or not 1 <= ndim <= 3:
        raise CorruptDatasetError(
            f"{path}: bad IDX magic number {magic} (0x{magic:08x}); expected "
            f"{_IMAGES_MAGIC} for images or {_LABELS_MAGIC} for labels."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptDatasetError(f"{path}: truncated IDX header.")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise CorruptDatasetError(
            f"{path}: header says shape {dims} ({expected} bytes) but the file "
            f"has {len(raw)} bytes; it is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_raw(path: Path) -> bytes:
    """Returns the decompressed bytes of a gzip file (or the bytes of a plain one)."""
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptDatasetError(f"{path}: not a valid gzip file ({exc}).") from exc


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads a (possibly gzip-compressed) uint8 IDX file into a read-only numpy array."""
    path = Path(path)
    return _parse_idx(_read_raw(path), path)


def _candidate_dirs(
    key: str, data_dir: str | os.PathLike[str] | None
) -> tuple[list[tuple[Path, str]], list[str]]:
    """Directories to search, in order, each with a label saying where it came from."""
    out: list[tuple[Path, str]] = []
    notes: list[str] = []
    for base, label, flat_ok in (
        (data_dir, "data_dir argument", True),
        (os.environ.get(ENV_VAR) or None, f"${ENV_VAR}", True),
        (default_cache_dir(), "user cache", False),
    ):
        if base is None:
            if label.startswith("$"):
                notes.append(f"${ENV_VAR} is not set.")
            continue
        base = Path(base).expanduser()
        out.extend((base / sub, label) for sub in _SUBDIRS[key])
        if flat_ok:
            out.append((base, label))
    return out, notes


def _missing(directory: Path) -> list[str]:
    return [f for f in FILES if not (directory / f).is_file()]


def _check_identity(key: str, fname: str, raw: bytes, path: Path, verify: bool) -> None:
    digest = _sha256(raw)
    if digest == _SHA256_RAW[key][fname]:
        return
    # A flat directory cannot tell MNIST from Fashion-MNIST by name, and train
    # and test files are easy to swap; the content hash tells them apart.
    for other_key, table in _SHA256_RAW.items():
        for other_fname, other_digest in table.items():
            if digest == other_digest:
                raise CorruptDatasetError(
                    f"{path} holds {_PRETTY[other_key]} {other_fname}, not "
                    f"{_PRETTY[key]} {fname}; check the directory layout."
                )
    if verify:
        raise ChecksumError(
            f"{path}: decompressed sha256 {digest} is not that of the published "
            f"{_PRETTY[key]} {fname} ({_SHA256_RAW[key][fname]}). Replace the file, or "
            "pass verify=False to load a non-standard copy."
        )


def _load_dir(key: str, directory: Path, verify: bool) -> Dataset:
    arrays: dict[str, np.ndarray] = {}
    for fname in FILES:
        path = directory / fname
        raw = _read_raw(path)
        arr = _parse_idx(raw, path)
        want = _IMAGES_MAGIC if "images" in fname else _LABELS_MAGIC
        got = int.from_bytes(raw[0:4], "big")
        if got != want:
            raise CorruptDatasetError(f"{path}: IDX magic number {got}, expected {want}.")
        # After the structural checks, whose messages say more than a hash can.
        _check_identity(key, fname, raw, path, verify)
        arrays[fname] = arr

    def images(fname: str) -> np.ndarray:
        x = arrays[fname].astype(np.float32)
        np.divide(x, 255.0, out=x)  # exact division, not multiplication by 1/255
        return x[..., None]

    def labels(fname: str, n_images: int) -> np.ndarray:
        y = arrays[fname]
        path = directory / fname
        if y.shape[0] != n_images:
            raise CorruptDatasetError(
                f"{path}: {y.shape[0]} labels for {n_images} images in the matching images file."
            )
        if y.size and int(y.max()) >= _NUM_CLASSES:
            raise CorruptDatasetError(f"{path}: label {int(y.max())} is outside 0..9.")
        return y.astype(np.int32)

    x_train, x_test = images(FILES[0]), images(FILES[2])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise CorruptDatasetError(
            f"{directory}: train images are {x_train.shape[1:3]} but test images are "
            f"{x_test.shape[1:3]}."
        )
    return Dataset(
        x_train=x_train,
        y_train=labels(FILES[1], x_train.shape[0]),
        x_test=x_test,
        y_test=labels(FILES[3], x_test.shape[0]),
        name=key,
        source=str(directory.resolve()),
    )


def _download_file(key: str, fname: str, dest_dir: Path) -> None:
    """Fetches one file into ``dest_dir``, trying each mirror; raises on failure."""
    expected = _SHA256_GZ[key][fname]
    errors: list[str] = []
    mismatch = False
    for mirror in _MIRRORS[key]:
        url = mirror + fname
        logger.info("downloading %s", url)
        # Write beside the target and rename, so an interrupted download never
        # leaves a truncated file under the real name.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=dest_dir)
        tmp = Path(tmp_name)
        try:
            hasher = hashlib.sha256()
            request = urllib.request.Request(url, headers={"User-Agent": "sparse_optax"})
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_S) as response,
            ):
                while chunk := response.read(1 << 20):
                    hasher.update(chunk)
                    out.write(chunk)
            digest = hasher.hexdigest()
            if digest != expected:
                mismatch = True
                errors.append(f"{url}: sha256 {digest} != expected {expected}")
                continue
            os.replace(tmp, dest_dir / fname)
            return
        except OSError as exc:  # includes urllib.error.URLError and timeouts
            errors.append(f"{url}: {exc}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    detail = "\n".join(f"    {e}" for e in errors)
    if mismatch:
        raise ChecksumError(
            f"downloaded {_PRETTY[key]} {fname} failed its checksum; the downloaded file was "
            f"deleted.\n{detail}"
        )
    raise OSError(f"could not download {_PRETTY[key]} {fname}:\n{detail}")


def _download(key: str, dest_dir: Path) -> None:
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the cache directory {dest_dir}: {exc}") from exc
    # Stop at the first file that cannot be fetched: when offline, trying the
    # other three only multiplies the wait.
    for fname in _missing(dest_dir):
        _download_file(key, fname, dest_dir)


def load_dataset(
    name: str = "mnist",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    verify: bool = True,
) -> Dataset:
    """Loads MNIST or Fashion-MNIST as float32 images in [0, 1], (N, 28, 28, 1), int32 labels.

    Args:
      name: ``"mnist"`` or ``"fashion_mnist"`` (``"fashion-mnist"`` also works).
      data_dir: a directory searched first, laid out like ``$SPARSE_OPTAX_DATA``.
      download: fetch the files into the user cache if no directory has them.
      verify: require each local file's decompressed contents to match the
        published data (cheap; turn off for custom or synthetic files).  Downloads
        are always checked against the published ``.gz`` sha256.

    Raises:
      DatasetNotFoundError: no directory holds the four files and downloading
        was off or failed; the message lists every place looked.
      CorruptDatasetError: a file is corrupt or is the wrong file.
      ChecksumError: a download, or with ``verify`` a local file, does not match.
    """
    key = _canonical_name(name)
    candidates, notes = _candidate_dirs(key, data_dir)
    looked: list[str] = []
    for directory, label in candidates:
        missing = _missing(directory)
        if not missing:
            return _load_dir(key, directory, verify)
        if len(missing) == len(FILES):
            looked.append(f"  - {directory}  ({label})")
        else:
            looked.append(f"  - {directory}  ({label}; missing {', '.join(missing)})")

    cache = default_cache_dir() / _SUBDIRS[key][0]
    if download:
        try:
            _download(key, cache)
        except OSError as exc:  # ChecksumError is not an OSError, so it propagates
            notes.append(f"Downloading into {cache} failed: {exc}")
        else:
            return _load_dir(key, cache, verify)
    else:
        notes.append("Downloading was disabled (download=False).")

    pretty = _PRETTY[key]
    message = "\n".join(
        [
            f"{pretty} files not found. Looked for {', '.join(FILES)} in:",
            *looked,
            *notes,
            "To provide them, either",
            f"  - set {ENV_VAR}=/path/to/data, where /path/to/data/{_SUBDIRS[key][0]}/ "
            "holds the four files, or",
            f"  - put the four files in {cache}/, or",
            "  - call load_dataset(..., download=True) with network access "
            f"(mirrors: {', '.join(_MIRRORS[key])}).",
        ]
    )
    raise DatasetNotFoundError(message)


def train_val_split(ds: Dataset, n_val: int = 5000, seed: int = 0) -> Dataset:
    """Holds out ``n_val`` random training examples as the evaluation split.

    The result's ``x_test``/``y_test`` are the validation examples and its
    ``eval_split`` is ``"val"``; the test set is dropped so tuning cannot touch
    it.  The split depends only on ``seed`` and the dataset size, and both parts
    keep the original order.
    """
    n = ds.x_train.shape[0]
    if not 0 < n_val < n:
        raise ValueError(f"n_val must be in 1..{n - 1} for {n} training examples, got {n_val}.")
    perm = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    return dataclasses.replace(
        ds,
        x_train=ds.x_train[train_idx],
        y_train=ds.y_train[train_idx],
        x_test=ds.x_train[val_idx],
        y_test=ds.y_train[val_idx],
        eval_split="val",
    )


def load_digits_fallback(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits (no network), as (N, 8, 8, 1) float32 in [0, 1].

    The train/test split is a deterministic shuffle (``seed``) with
    ``test_fraction`` of the 1797 images held out.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            "load_digits_fallback needs scikit-learn; install it with "
            "pip install 'sparse_optax[demo]' (or pip install scikit-learn)."
        ) from exc
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    bunch = load_digits()
    # Pixel values are integers 0..16.
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[..., None]
    y = np.asarray(bunch.target, dtype=np.int32)
    n = x.shape[0]
    n_test = max(1, round(test_fraction * n))
    perm = np.random.default_rng(seed).permutation(n)
    test_idx, train_idx = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    return Dataset(
        x_train=x[train_idx],
        y_train=y[train_idx],
        x_test=x[test_idx],
        y_test=y[test_idx],
        name="digits",
        source="sklearn.datasets.load_digits",
    )
