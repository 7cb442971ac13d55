"""``yujing broker``: fetch, start, stop and inspect the local Kafka broker (:mod:`yujing.services.broker`), and create the project's topics on any Kafka."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape

from streams.topics import (
    TopicError,
    contract_topics,
    create_when_ready,
)
from yujing.services.broker import (
    LocalBroker,
    broker_from_settings,
)
from yujing.services.kafka_dist import (
    BrokerError,
)
from yujing.services.lifecycle import (
    fail,
    out,
    print_log,
    print_started,
    print_state,
    print_stopped,
)
from yujing.settings import Settings, get_settings

broker_app = typer.Typer(
    help="Run a local Apache Kafka broker: fetched from Maven Central once, cached, "
    "started in the background on loopback.",
    no_args_is_help=True,
)


def _local_broker() -> tuple[Settings, LocalBroker]:
    settings = get_settings()
    return settings, broker_from_settings(settings)


@broker_app.command("start")
def start_command(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker.")] = 60,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Stop the broker if running and delete all its topics first (start empty).")] = False,
    secure: Annotated[bool, typer.Option(
        "--secure", help="Serve SASL_SSL (TLS with its own CA, SCRAM logins) instead of PLAINTEXT; "
        "also when YUJING_KAFKA_SECURITY_PROTOCOL=SASL_SSL.")] = False,
) -> None:
    """Fetch Kafka if needed, start the broker and create the contract topics."""
    settings, broker = _local_broker()
    broker.secure = broker.secure or secure
    try:
        if fresh:
            broker.wipe()
        if not broker.is_fetched:
            began = time.monotonic()
            with out.status(
                f"Fetching Apache Kafka {broker.version} from Maven Central (once)..."
            ):
                broker.fetch()
            out.print(
                f"fetched Kafka {broker.version} into {broker.libs_dir} in {time.monotonic() - began:.1f} s"
            )
        with out.status(f"Starting Kafka {broker.version} on {broker.bootstrap}..."):
            started = broker.start(timeout=timeout)
        with out.status("Creating topics..."):
            created = broker.ensure_topics(contract_topics(settings))
            topics = broker.list_topics()
    except BrokerError as error:
        fail(error)
    print_started(f"Kafka {broker.version}", broker.bootstrap, started)
    for name in topics:
        out.print(f"  {escape(name)}" + ("  [dim](created)[/dim]" if name in created else ""))
    out.print(f"[dim]log: {broker.log_path}[/dim]")
    if broker.secure:
        # The password stays in the file (mode 600): the terminal only shows where it is.
        out.print(f"{broker.client_security().describe()}; clients load their settings with:")
        out.print(f"  set -a; . {escape(str(broker.client_env))}; set +a")


@broker_app.command("create-topics")
def create_topics_command(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker to answer.")] = 120,
) -> None:
    """Create the contract's and the worker's topics on YUJING_BOOTSTRAP_SERVERS (any Kafka, e.g.
    in Compose or Kubernetes) with their partition counts and configs; only what is missing."""
    settings = get_settings()
    try:
        created, wanted = create_when_ready(settings, timeout)
    except TopicError as error:
        fail(BrokerError(str(error)))
    out.print(f"{len(created)} topic(s) created on {settings.bootstrap}; {wanted - len(created)} existed")
    for name in created:
        out.print(f"  {escape(name)}")


@broker_app.command("stop")
def stop_command(
    timeout: Annotated[float, typer.Option(help="Seconds before SIGKILL.")] = 30,
) -> None:
    """Stop the broker; its data stays for the next start."""
    _, broker = _local_broker()
    try:
        stopped = broker.stop(timeout=timeout)
    except BrokerError as error:
        fail(error)
    print_stopped("broker", stopped)


@broker_app.command("status")
def status_command() -> None:
    """Show whether the broker runs, its address, version and topics (exit 1 if down)."""
    _, broker = _local_broker()
    try:
        st = broker.status()
    except BrokerError as error:
        fail(error)
    print_state(st, f"Kafka {st.version}", "Kafka")
    for name in st.topics:
        out.print(f"  {escape(name)}")
    out.print(f"[dim]log: {st.log_path}[/dim]")
    if not st.running:
        raise typer.Exit(1)


@broker_app.command("logs")
def logs_command(
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines to show.")] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
) -> None:
    """Print the end of the broker's log."""
    _, broker = _local_broker()
    log = broker.log_path
    missing = BrokerError(f"no broker log at {log} yet: run `yujing broker start`")
    print_log(log, lines, missing, follow)
