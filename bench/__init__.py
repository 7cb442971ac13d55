"""Speed measurements. ``yujing bench`` (:mod:`bench.run`, :mod:`bench.report`): the live worker
against the Kafka client, a bare Faust agent and a naive Faust pipeline on the same broker, the
replay against a raw decode of the same files, scaling out, latency, state and catch-up. The
scripts beside it (``case_ingest.py``, ``whatif.py``, ``worker_observability.py``, ``nab.py``)
measure one part each and are run as files."""
