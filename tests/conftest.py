"""Fixtures shared by the test files."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

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


@pytest.fixture(scope="session")
def celeba_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CelebA folder in the real layout (30 images; see celeba_files.py), written once per session.

    Loading it writes the resized cache into it; tests that change files make their own folder.
    """
    from celeba_files import write_celeba_folder

    return write_celeba_folder(tmp_path_factory.mktemp("celeba"))


# The factor sizes of the tiny 3dshapes.h5 the tests write: the real file's six factors, 192 images.
SHAPES3D_TEST_SIZES = (2, 2, 2, 2, 4, 3)


@pytest.fixture(scope="session")
def shapes3d_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding a tiny ``3dshapes.h5`` in the real layout (drawn scenes), written once."""
    from betavae.data.shapes3d import FILE_NAME, write_synthetic

    folder = tmp_path_factory.mktemp("data")
    write_synthetic(folder / FILE_NAME, SHAPES3D_TEST_SIZES)
    return folder


# Fixtures that train a model, sweep, start Ray or a browser: every test using one is marked ``slow``
# (see pytest_collection_modifyitems), so ``make test-fast`` never sets one up.
TRAINING_FIXTURES = frozenset({"trained", "two_runs", "run_dir", "dsprites_run", "finished", "ray_instance",
                               "mnist_runs", "shapes_run", "mnist_result", "demo_run", "demo_runs",
                               "mnist_site", "browser", "heart_run",
                               "colour_runs", "celeba_run", "shapes3d_run", "study"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that uses a fixture of :data:`TRAINING_FIXTURES`."""
    for item in items:
        if TRAINING_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def fast_tests_neither_train_nor_start_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    """In a run leaving out ``slow`` tests (``make test-fast``), a test that trains or starts Python fails.

    So a test that trains without the mark is found the first time the fast set runs,
    instead of making the edit–test loop slow unnoticed.
    """
    if "not slow" not in (request.config.option.markexpr or ""):
        yield
        return
    import multiprocessing.process
    import subprocess

    import betavae.steps

    def refuse(what: str) -> Callable[..., NoReturn]:
        def refused(*args: object, **kwargs: object) -> NoReturn:
            pytest.fail(f"a test outside the slow set {what}: mark it @pytest.mark.slow, or add the fixture "
                        f"that does it to TRAINING_FIXTURES in tests/conftest.py", pytrace=False)
        return refused

    class Popen(subprocess.Popen):
        """Refuses Python and this environment's scripts (betavae), seconds to start; ldconfig passes."""

        def __init__(self, args: Any, *more: Any, **kwargs: Any) -> None:
            program = args[0] if isinstance(args, (list, tuple)) else args
            if Path(str(program)).parent == Path(sys.executable).parent:
                refuse("starts a Python process")()
            super().__init__(args, *more, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        # The first optimiser step, not train(): a test of what train() refuses before any work is fast.
        patch.setattr(betavae.steps, "training_step", refuse("trains a model"))
        patch.setattr(subprocess, "Popen", Popen)
        patch.setattr(multiprocessing.process.BaseProcess, "start", refuse("starts a process"))
        yield


@pytest.fixture(scope="session", autouse=True)
def a_cache_of_the_tests_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The user's cache (``$XDG_CACHE_HOME/betavae``: baselines, downloads) is a folder of this test run's:
    a test neither reads what an earlier run or the user left there nor leaves anything behind."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
        yield
