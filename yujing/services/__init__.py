"""The local services an operator or a test session runs on one machine without Docker:
Apache Kafka (``broker``), PostgreSQL (``database``), Prometheus (``prometheus``), and the
processes they share (``processes``)."""
