"""Fixtures shared by the test files."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from marks import shared_resource, slow_fixture


def _share_the_cores_among_workers() -> None:
    """Under ``pytest -n K`` (make test), give each worker's torch cores/K threads.

    Torch starts one thread per core in every process; K workers each running a training on all the
    cores spin against one another (their OpenMP threads busy-wait), which made single tests 10 to
    20 times slower than alone. Set before any test imports torch; the processes a test starts
    (``betavae train``, sweep workers) inherit it.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[variable] = threads
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(threads))
        # numpy's BLAS may have started its threads already (a plugin imported numpy): one per core of
        # the machine, spinning on this worker's core, made its scikit-learn fits and matrix products
        # (the study's baselines, PCA, ICA) take twice as long as alone.
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(threads))
        _pin_to_own_cores(workers)


def _pin_to_own_cores(workers: int) -> None:
    """Give each worker its own share of the cores (Linux), which the processes its tests start inherit.

    A sweep sizes its workers and their threads by the cores it may run on
    (``betavae.studies.local.available_cores``): unpinned, a sweep test's two-thread worker ran beside
    the other pytest worker's training, three spinning threads on two cores, and the same test took
    from 25 to 49 s from one run of the suite to the next.
    """
    if not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    share = len(cores) // workers
    if share >= 1 and index < workers:
        mine = cores[index * share:(index + 1) * share]
        # Every thread of the process: the ones started before this (execnet's) keep their own
        # affinity otherwise, and threads they start later would inherit it.
        for thread in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ["0"]:
            try:
                os.sched_setaffinity(int(thread), mine)
            except OSError:  # a thread that ended meanwhile
                pass


_share_the_cores_among_workers()


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


def fixture_functions(item: pytest.Item) -> list[Callable[..., object]]:
    """The functions of every fixture ``item`` uses, directly or through other fixtures (the
    closest definition of each name: the one the test gets)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return [definitions[-1].func for definitions in info.name2fixturedefs.values() if definitions]


# Files whose tests share one costly resource of the test run (marks.shared_resource): under
# ``pytest -n`` (make test) each resource's files run in one worker, which starts it once. Every
# other file is a group of its own, so its module-scoped fixtures (a trained run, a sweep) are set
# up once. pytest_collection_modifyitems checks that the tests using a resource are in its files.
SHARED_RESOURCE_FILES = {
    "tests/test_demo_browser.py": "chromium",
    "tests/test_report.py": "chromium",
    # The study at its test scale, which the poster's browser tests open: one study and one Chromium.
    "tests/test_reproduce.py": "chromium",
    "tests/test_poster.py": "chromium",
    "tests/test_sweep_ray.py": "ray",
}

# The groups that take longest (the study, the fault-injection loops, Ray, sweeps, Chromium), as the
# durations printed after every test run show them; xdist hands out groups in collection order as
# workers come free, so these go first and no long group starts last to run on alone.
LONGEST_FIRST = {group: rank for rank, group in enumerate((
    "chromium", "tests/test_run_folder.py", "ray", "tests/test_sweep.py",
    "tests/test_time_to_disentangle.py", "tests/test_performance.py", "tests/test_train.py",
    "tests/test_transfer.py", "tests/test_sweep_packed.py",
))}


def group_of(nodeid: str) -> str:
    """The group a test runs in under ``pytest -n``: its resource's, else its file's."""
    file = nodeid.split("::", 1)[0]
    return SHARED_RESOURCE_FILES.get(file, file)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test using a fixture marked by :func:`marks.slow_fixture` (directly or
    through another fixture), check that the tests of a shared resource run in its group, and put
    the longest groups first."""
    from marks import RESOURCE, SLOW

    for item in items:
        functions = fixture_functions(item)
        if any(getattr(function, SLOW, False) for function in functions):
            item.add_marker(pytest.mark.slow)
        for resource in {getattr(f, RESOURCE) for f in functions if hasattr(f, RESOURCE)}:
            if group_of(item.nodeid) != resource:
                raise pytest.UsageError(f"{item.nodeid} uses the test run's {resource}: add its file to "
                                        f"SHARED_RESOURCE_FILES in tests/conftest.py")
    items.sort(key=lambda item: LONGEST_FIRST.get(group_of(item.nodeid), len(LONGEST_FIRST)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``pytest -n``: whole groups (:func:`group_of`) to a worker, as ``--dist loadfile`` does
    with files."""
    from xdist.scheduler import LoadFileScheduling

    # In collection order (LONGEST_FIRST's), not xdist's default of the groups with most tests first,
    # which started the many quick parametrised tests of the demo's server before the study.
    config.option.loadscopereorder = False

    class ByGroup(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return ByGroup(config, log)


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

    import betavae.training.steps

    def refuse(what: str) -> Callable[..., NoReturn]:
        def refused(*args: object, **kwargs: object) -> NoReturn:
            pytest.fail(f"a test outside the slow set {what}: mark it @pytest.mark.slow, or decorate the "
                        f"fixture that does it with marks.slow_fixture", pytrace=False)
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
        patch.setattr(betavae.training.steps, "training_step", refuse("trains a model"))
        patch.setattr(subprocess, "Popen", Popen)
        patch.setattr(multiprocessing.process.BaseProcess, "start", refuse("starts a process"))
        yield


@pytest.fixture(scope="session")
@slow_fixture
def trained_runs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Runs trained once per test process, keyed by config, handed out as copies (runfolders.TrainedRuns)."""
    from runfolders import TrainedRuns

    return TrainedRuns(tmp_path_factory.mktemp("trained-runs"))


@pytest.fixture(scope="session")
@shared_resource("chromium")
def browser() -> Iterator[Any]:
    """The test run's one Chromium (Debian's, driven by Playwright), or a skip saying how to get it.

    Tests open their own pages and close them; the browser is started once.
    """
    from browser import CHROMIUM, CHROMIUM_FLAGS

    if not CHROMIUM.is_file():
        pytest.skip(f"Debian's Chromium not found at {CHROMIUM}: `make test` installs it (apt: chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session", autouse=True)
def a_cache_of_the_tests_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The user's cache (``$XDG_CACHE_HOME/betavae``: baselines, downloads) is a folder of this test run's:
    a test neither reads what an earlier run or the user left there nor leaves anything behind.

    One exception: ONNX Runtime Web, which ``make test`` installs into the user's cache (14 MB, its
    integrity checked), is linked into this cache when installed there, so that the demo's tests
    find it instead of downloading it on first use as ``betavae demo`` would.
    """
    from betavae.demo import vendor

    installed = vendor.vendor_dir() if vendor.installed() else None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
        if installed is not None:
            vendor.vendor_dir().parent.mkdir(parents=True)
            vendor.vendor_dir().symlink_to(installed, target_is_directory=True)
        yield


@pytest.fixture(scope="session")
@shared_resource("chromium")
def test_study(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """``betavae reproduce`` at its test scale (smoke's shape on fewer steps), with its report and poster,
    on real MNIST where the tests have it (else its parts are skipped and the report says why). Run once
    per test run, in the worker of Chromium, whose tests open its poster."""
    from betavae.study.runner import reproduce

    try:
        data_dir = request.getfixturevalue("mnist_dir")
    except pytest.skip.Exception:
        data_dir = tmp_path_factory.mktemp("no_data")
    out = tmp_path_factory.mktemp("study") / "reproduce"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BETAVAE_DATA_DIR", str(data_dir))
        lines: list[str] = []
        report = reproduce("test", out, progress=False, echo=lines.append, download=False)
    assert report == out / "report.html"
    skipped = any(line.startswith("skipping the MNIST parts") for line in lines)
    assert skipped == (not (out / "mnist").exists())
    assert (out / "poster" / "index.html").is_file(), lines
    return out
