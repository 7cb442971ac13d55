"""The life of a local service process, shared by the local Kafka broker, PostgreSQL and Prometheus.

Each service runs detached from the command that starts it (its own session) and is started,
waited for, stopped and inspected the same way: under an advisory lock, with a readiness probe,
with a signal that escalates, and with one line for a human when something goes wrong (the last
error the service logged, when there is one). Kafka and PostgreSQL are found again by the next
command through a pid file; Prometheus lives as long as the demo or test that starts it. What
only one service needs (Maven and KRaft for Kafka: ``broker``, ``kafka_dist``; initdb and roles
for PostgreSQL: ``database``, ``postgres_dist``) stays in its own modules; the functions here
know nothing of either.

The last section is the output the ``yujing broker`` and ``yujing db`` command groups share.
Importing this module has no side effects.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape


class ServiceError(Exception):
    """A local service cannot do what was asked; the message is one line for a human."""


@dataclass(frozen=True, kw_only=True)
class ServiceStatus:
    """What a service's ``status()`` and ``start()`` observed of its process; each service
    adds its own details (``BrokerStatus``, ``DatabaseStatus``)."""

    running: bool  # our process is alive
    reachable: bool  # something answers the service's protocol at ``address``
    pid: int | None
    address: str
    log_path: Path
    elapsed: float | None = None  # seconds ``start()`` took
    already_running: bool = False


# -- pid files and locks ------------------------------------------------------------


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path``, held for the ``with`` block."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file``, or None when there is none (or no file)."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


# -- processes ----------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (one of ours is reaped on the way)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    # An exited child nobody reaped yet still answers signal 0: reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return _proc_state(pid) not in ("Z", "X")


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) S ...": comm may contain spaces and parentheses.
    return stat.rpartition(")")[2].split()[0]


def child_alive(child: subprocess.Popen[bytes] | None, pid: int) -> bool:
    """Whether process ``pid`` runs; asked through ``child`` when it is that process, so the
    ``Popen`` reaps it and keeps its exit code for the error message."""
    if child is not None and child.pid == pid:
        return child.poll() is None
    return pid_alive(pid)


def process_args(pid: int) -> list[bytes] | None:
    """The command line of process ``pid`` (from ``/proc``), or None when it cannot be read."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None


def process_cwd(pid: int) -> Path | None:
    """The working directory of process ``pid`` (from ``/proc``), or None when it cannot be read."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def send_signal(pid: int, signum: signal.Signals) -> None:
    """Send ``signum`` to ``pid``; a process already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def wait_exit(pid: int, timeout: float, alive: Callable[[int], bool] = pid_alive) -> bool:
    """Wait up to ``timeout`` s for ``pid`` to exit; return whether it did."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def terminate(
    pid: int, grace: float, alive: Callable[[int], bool] = pid_alive, kill_wait: float = 10
) -> bool:
    """SIGTERM, then SIGKILL if ``pid`` still runs after ``grace`` s; return whether it exited
    (within ``kill_wait`` s of the SIGKILL at the latest)."""
    send_signal(pid, signal.SIGTERM)
    if wait_exit(pid, grace, alive):
        return True
    send_signal(pid, signal.SIGKILL)
    return wait_exit(pid, kill_wait, alive)


def spawn_detached(
    cmd: Sequence[str],
    output: Path,
    *,
    append: bool = True,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Run ``cmd`` with its stdout and stderr in ``output`` (appended, or from empty).

    Its own session (and process group): Ctrl-C in the terminal and the CLI exiting leave it
    running.
    """
    with output.open("ab" if append else "wb") as log:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )


class Readiness(Enum):
    """How waiting for a starting service ended."""

    READY = "ready"
    EXITED = "exited"
    TIMED_OUT = "timed out"


def wait_until_ready(
    ready: Callable[[], bool], alive: Callable[[], bool], deadline: float, poll: float = 0.1
) -> Readiness:
    """Probe a starting service until it is ``ready``, its process is no longer ``alive``, or
    ``time.monotonic()`` passes ``deadline``; the caller words the error for its service."""
    while True:
        if not alive():
            return Readiness.EXITED
        if ready():
            return Readiness.READY
        if time.monotonic() >= deadline:
            return Readiness.TIMED_OUT
        time.sleep(poll)


# -- ports --------------------------------------------------------------------------


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def check_ports_free(
    host: str, ports: Iterable[tuple[int, str]], service: str, error: type[ServiceError]
) -> None:
    """Raise ``error`` for the first of ``ports`` (port, the variable that moves it) already in
    use; ``service`` names what else may hold it ("a broker")."""
    for port, variable in ports:
        if port_in_use(host, port):
            raise error(
                f"{host}:{port} is already in use by another process "
                f"({service} from another home?): stop it or set {variable}"
            )


# -- logs and program output --------------------------------------------------------


def file_size(path: Path) -> int:
    """The size of ``path`` in bytes; 0 when it does not exist (yet)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_from(path: Path, offset: int = 0) -> str:
    """The text of ``path`` from byte ``offset`` on (what a service logged since); "" if unreadable."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of a text file, read from its end (logs grow large)."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        block, data = 8192, b""
        while end > 0 and data.count(b"\n") <= count:
            start = max(0, end - block)
            f.seek(start)
            data = f.read(end - start) + data
            end = start
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:] if count > 0 else []


def last_line(text: str) -> str:
    """The last non-empty line of a program's output, without colours, at most 400 characters."""
    lines = [strip_ansi(line).strip() for line in text.splitlines()]
    return next((line for line in reversed(lines) if line), "")[:400]


def failure_line(done: subprocess.CompletedProcess[str]) -> str:
    """What a failed program said last, or its exit code when it said nothing."""
    return last_line(done.stdout + "\n" + done.stderr) or f"exit code {done.returncode}"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes (Debian's Maven colours even in batch mode)."""
    return _ANSI.sub("", text)


# -- the command groups' output -----------------------------------------------------

out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(error: ServiceError) -> NoReturn:
    """End the command with ``error`` as one red line on stderr and exit code 1."""
    err.print(f"[red]error: {escape(str(error))}[/red]")
    raise typer.Exit(1)


def print_started(product: str, address: str, started: ServiceStatus) -> None:
    """``Kafka 4.1.1 started at 127.0.0.1:9092 (pid 42) in 3.1 s`` (or ``already running``)."""
    state = "already running" if started.already_running else "started"
    out.print(
        f"[green]{product} {state}[/green] at [bold]{address}[/bold] "
        f"(pid {started.pid}) in {started.elapsed or 0:.1f} s"
    )


def print_state(st: ServiceStatus, running_as: str, product: str) -> None:
    """Whether the service runs and answers, runs without answering, is someone else's or is
    down; ``running_as`` says what runs ("Kafka 4.1.1"), ``product`` what may answer ("Kafka")."""
    if st.running and st.reachable:
        out.print(f"[green]running[/green] pid {st.pid}, {running_as} at [bold]{st.address}[/bold]")
    elif st.running:
        out.print(
            f"[yellow]starting or stuck[/yellow]: pid {st.pid} does not answer on {st.address}"
        )
    elif st.reachable:
        out.print(f"[yellow]not ours[/yellow]: another {product} answers at {st.address}")
    else:
        out.print(f"[red]not running[/red] ({st.address})")


def print_stopped(service: str, stopped: bool) -> None:
    out.print(f"[green]{service} stopped[/green]" if stopped else f"{service} was not running")


def print_log(log: Path, lines: int, missing: ServiceError, follow: bool = False) -> None:
    """Print the last ``lines`` of ``log`` (failing with ``missing`` when there is no log yet),
    then with ``follow`` whatever is appended, until Ctrl-C."""
    if not log.is_file():
        fail(missing)
    for line in tail_lines(log, lines):
        typer.echo(line)
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            follow_log(log)


def follow_log(log: Path) -> None:
    """Echo what is appended to ``log``, forever; a log that shrank (rotated) is read anew."""
    position = file_size(log)
    while True:
        size = file_size(log)
        if size < position:
            position = 0  # rotated: start on the new file
        if size > position:
            with log.open("rb") as f:
                f.seek(position)
                chunk = f.read()
            position += len(chunk)
            typer.echo(chunk.decode("utf-8", errors="replace"), nl=False)
        time.sleep(0.5)
