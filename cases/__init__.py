"""The case desk: cases in PostgreSQL built from the disposal queue, their HTTP API and web inbox,
webhooks to outside systems and feedback to the scoring side (``yujing cases ...``)."""
