"""How many CPU threads recalign gives torch: requests win, otherwise the free cores."""

from __future__ import annotations

import pytest

from recalign import threads
from recalign.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """No thread request in the environment, and whatever a test exports is undone."""
    for name in (threads.THREADS_ENV, *threads.POOL_ENVS):
        monkeypatch.setenv(name, "")  # recorded, so the teardown restores the original
        monkeypatch.delenv(name)


def _machine(monkeypatch, cores: int, others: float | None) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: cores)
    monkeypatch.setattr(threads, "others_busy_cores", lambda seconds=0.0: others)


@pytest.mark.parametrize(
    ("cores", "others", "expected"),
    [
        (2, 0.0, 2),  # quiet: every core
        (2, 0.1, 2),  # a little noise does not cost a thread
        (2, 0.5, 1),  # half a core taken: a second thread would wait at every barrier
        (2, 2.0, 1),  # two busy loops: one thread, never zero
        (2, 5.0, 1),
        (8, 3.0, 5),
        (1, 0.0, 1),
        (4, None, 4),  # load unknown (a container on a bigger host): the cores
    ],
)
def test_auto_gives_up_threads_to_other_processes(monkeypatch, cores, others, expected):
    _machine(monkeypatch, cores, others)
    choice = threads.choose_threads()
    assert choice.threads == expected


def test_requests_win_in_order(monkeypatch):
    _machine(monkeypatch, 2, 2.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose_threads().threads == 3  # an exported OMP_NUM_THREADS is a request
    monkeypatch.setenv(threads.THREADS_ENV, "2")
    assert threads.choose_threads().threads == 2  # RECALIGN_THREADS beats it
    assert threads.choose_threads(4).threads == 4  # --threads beats both
    assert threads.choose_threads("auto").threads == 1  # ... and may ask to choose
    monkeypatch.setenv(threads.THREADS_ENV, "0")
    assert threads.choose_threads().threads == 1


@pytest.mark.parametrize("bad", ["x", "-1", "1.5"])
def test_bad_requests_are_config_errors(monkeypatch, bad):
    monkeypatch.setenv(threads.THREADS_ENV, bad)
    with pytest.raises(ConfigError, match=threads.THREADS_ENV):
        threads.choose_threads()


def test_export_sets_the_native_pools(monkeypatch):
    import os

    threads.export_request("3")
    assert os.environ[threads.THREADS_ENV] == "3"
    assert all(os.environ[name] == "3" for name in threads.POOL_ENVS)
    for name in threads.POOL_ENVS:
        monkeypatch.delenv(name)
    threads.export_request("auto")
    assert os.environ[threads.THREADS_ENV] == "auto"
    assert not any(name in os.environ for name in threads.POOL_ENVS)


def test_configure_applies_to_torch(monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        assert threads.configure_threads(1) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_busy_sample_is_measured_here():
    """The real sampler: a number of cores between 0 and the machine's, or unknown."""
    measured = threads.others_busy_cores(seconds=0.05)
    assert measured is None or 0.0 <= measured <= threads.available_cores() + 0.5


def test_cli_option_reaches_child_processes_and_refuses_nonsense():
    import subprocess
    import sys

    probe = (
        "import os; print(os.environ.get('RECALIGN_THREADS'), os.environ.get('OMP_NUM_THREADS'))"
    )
    ok = subprocess.run(
        [sys.executable, "-m", "recalign", "--threads", "1", "data", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "recalign", "--threads", "many", "data", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "--threads must be a number of threads or 'auto'" in bad.stderr
    assert "Traceback" not in bad.stderr
    threads.export_request("1")
    child = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert child.stdout.split() == ["1", "1"]
