"""Fault injection, measured (issue 16): crash and restart the worker, the broker, PostgreSQL and
the case service while a year of events flows, then compare everything that came out with the
replay reference; and measure what a flood of bad records costs the good ones.

* :mod:`chaos.compare`: the comparisons (pure: lists and dicts in, verdicts out);
* :mod:`chaos.schedule`: where the faults fall (seeded);
* :mod:`chaos.stack`: the run's own broker and PostgreSQL, on free ports in a temporary home;
* :mod:`chaos.receiver`: the webhook receiver that records every push;
* :mod:`chaos.run`: the fault-injection run; :mod:`chaos.desk`: the case desk's side of it;
* :mod:`chaos.flood`: good-event throughput with and without a flood of bad records;
* :mod:`chaos.report`: the table and the JSON; :mod:`chaos.cli`: ``yujing chaos``.

Docs: docs/faults.md.
"""
