"""The ``yujing`` command line (typer): the main app, mounting each command (group) from its own
module in this package. Errors are one clear line, never a traceback."""

from __future__ import annotations

import typer

from chaos.cli import chaos_app
from yujing.cli.backtest import backtest_command
from yujing.cli.bench import bench_command
from yujing.cli.broker import broker_app
from yujing.cli.cases import cases_app
from yujing.cli.db import db_app
from yujing.cli.demo import demo_command
from yujing.cli.evaluate import evaluate_command
from yujing.cli.explain import explain_command
from yujing.cli.indicators import indicators_command
from yujing.cli.publish import publish_command
from yujing.cli.simulate import simulate_command
from yujing.cli.thresholds import thresholds_app
from yujing.cli.train import train_command
from yujing.cli.worker import worker_command

app = typer.Typer(
    help="yujing 预警: early warning of prepaid-card collapses (beauty, hairdressing, fitness).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# The order here is the order of `yujing --help` (commands first, then the groups).
app.add_typer(broker_app, name="broker", help="Fetch, start, stop and inspect the local Kafka broker.")
app.add_typer(db_app, name="db", help="Start, stop and inspect the local PostgreSQL (case service).")
app.add_typer(cases_app, name="cases", help="The case desk: cases from warnings, API, web inbox, webhooks.")
app.add_typer(chaos_app, name="chaos", help="Fault injection, measured: kill -9 and restarts against the replay; bad-record floods.")
app.add_typer(thresholds_app, name="thresholds",
              help="Threshold versions: validate, compare, publish to running workers, history.")
app.command("simulate", help="Simulate merchants, consumers and complaints (files or Kafka).")(simulate_command)
app.command("train", help="Learn the fusion's weights and level bands from randomised labelled worlds.")(
    train_command
)
app.command("explain", help="One merchant's timeline: activity, readings, score, levels, warnings (text + PNG).")(
    explain_command
)
app.command("worker")(worker_command)
app.command("backtest")(backtest_command)
app.command("bench")(bench_command)
app.command("publish")(publish_command)
app.command("demo")(demo_command)
app.command("evaluate", help="Recall, lead time and false alarms by the referee's rules, on randomised simulated "
            "worlds or any labelled files; --indicators: the indicator evidence table.")(evaluate_command)
app.command("indicators")(indicators_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
