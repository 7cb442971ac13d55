"""The scoring engine, pure: one partition's event-time clock, state and warnings
(``partition``), replaying contract files through it (``replay``, ``checkpoints``,
``rejudge``), the merchant-day history it records, and judging and learning from labelled
worlds (``judging``, ``recording``, ``indicator_evidence``, ``training``).

The live worker (``streams/``) and every offline tool call the same code. Nothing here imports
Kafka, Faust, a database, the network or the ``yujing`` shell; ``tests/test_layering.py`` checks
it, transitively.
"""
