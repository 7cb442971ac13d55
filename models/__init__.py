"""Pure scoring core of yujing: merchant state, indicators and online detectors.

Nothing here imports Kafka, Faust or does I/O, so the same code serves the live worker and
offline replays (``yujing backtest``).
"""
