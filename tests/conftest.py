"""Fixtures shared by the test files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder holding the four real MNIST ``.gz`` files, or a skip saying how to provide it.

    Found through ``$BETAVAE_MNIST_DIR`` (the Makefile sets it), else ``../shared/data/mnist``
    beside the repository. Tests copy from it and never write into it.
    """
    from betavae.data.mnist import FILES

    default = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
    folder = Path(os.environ.get("BETAVAE_MNIST_DIR") or default)
    absent = [stem + ".gz" for stem in FILES if not (folder / (stem + ".gz")).is_file()]
    if absent:
        pytest.skip(f"real MNIST files not found ({', '.join(absent)} missing in {folder}); "
                    f"set BETAVAE_MNIST_DIR to a folder holding the four .gz files")
    return folder
