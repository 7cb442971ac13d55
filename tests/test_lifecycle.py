"""Tests of the process lifecycle the local services share, :mod:`yujing.services.lifecycle`.

None needs Kafka or PostgreSQL: the processes here are small Python children of the test.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from yujing.services.lifecycle import (
    Readiness,
    ServiceError,
    check_ports_free,
    child_alive,
    failure_line,
    read_from,
    read_pid,
    spawn_detached,
    terminate,
    wait_until_ready,
)

IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


def test_waiting_ends_ready_exited_or_timed_out() -> None:
    soon = time.monotonic() + 5
    assert wait_until_ready(lambda: True, lambda: True, soon) is Readiness.READY
    # A process that is gone is reported as such even if something else answers.
    assert wait_until_ready(lambda: True, lambda: False, soon) is Readiness.EXITED
    past = time.monotonic() - 1
    assert wait_until_ready(lambda: False, lambda: True, past) is Readiness.TIMED_OUT


def test_terminate_escalates_to_sigkill() -> None:
    child = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        assert terminate(child.pid, grace=0.5, alive=lambda pid: child_alive(child, pid))
        assert child.returncode == -9  # reaped through the Popen, which kept the exit code
    finally:
        child.kill()
        child.wait()


def test_a_detached_process_writes_into_its_log(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    log.write_text("earlier run\n")
    child = spawn_detached([sys.executable, "-c", "print('hello')"], log)
    assert child.wait(30) == 0
    assert read_from(log) == "earlier run\nhello\n"
    spawn_detached([sys.executable, "-c", "print('again')"], log, append=False).wait(30)
    assert read_from(log) == "again\n"
    assert read_from(tmp_path / "missing.log") == ""


def test_pid_file_without_a_pid(tmp_path: Path) -> None:
    pid_file = tmp_path / "service.pid"
    assert read_pid(pid_file) is None
    pid_file.write_text("not a pid\n")
    assert read_pid(pid_file) is None
    pid_file.write_text("4242\n")
    assert read_pid(pid_file) == 4242


def test_a_taken_port_names_the_variable_that_moves_it() -> None:
    class LocalError(ServiceError):
        pass

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(LocalError) as caught:
            check_ports_free("127.0.0.1", [(port, "YUJING_X_PORT")], "an x", LocalError)
    assert str(caught.value) == (
        f"127.0.0.1:{port} is already in use by another process (an x from another home?): "
        "stop it or set YUJING_X_PORT"
    )


def test_failure_line_is_the_last_thing_said_or_the_exit_code() -> None:
    said = subprocess.CompletedProcess([], 1, stdout="working\n", stderr="\x1b[31mno space left\x1b[0m\n\n")
    assert failure_line(said) == "no space left"
    assert failure_line(subprocess.CompletedProcess([], 3, stdout="", stderr="")) == "exit code 3"
