"""Runs every example notebook top to bottom in quick mode (``SPARSE_OPTAX_QUICK=1``).

Needs the notebook tools (``pip install -e ".[test]"``); skipped without them. The
notebooks that train on MNIST are skipped when MNIST is not available locally
(``$SPARSE_OPTAX_DATA`` or the user cache): the test never downloads.
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CASES = [
    ("01_quickstart.ipynb", True),
    ("02_penalty_gallery.ipynb", False),
    ("03_compact_lenet5.ipynb", True),
]


def _mnist_available() -> bool:
    from sparse_optax import data

    try:
        data.load_dataset("mnist", download=False)
    except (data.DatasetNotFoundError, data.CorruptDatasetError):
        return False
    return True


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(n for n, _ in CASES)


@pytest.mark.parametrize(("name", "needs_mnist"), CASES)
def test_notebook_runs_in_quick_mode(name, needs_mnist, monkeypatch):
    if needs_mnist and not _mnist_available():
        pytest.skip("MNIST not available locally (set SPARSE_OPTAX_DATA)")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    # The kernel is a subprocess: it inherits this environment.
    monkeypatch.setenv("SPARSE_OPTAX_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = nbclient.NotebookClient(
        nb,
        timeout=300,  # per cell
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
