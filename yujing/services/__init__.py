"""The local services an operator or a test session runs on one machine without Docker:
Apache Kafka (``broker``, its distribution in ``kafka_dist``), PostgreSQL (``database``,
``postgres_dist``), Prometheus (``prometheus``), the process lifecycle they share
(``lifecycle``: pid files, locks, start-and-wait, stop with escalation, status, logs), and
yujing's own worker and case-service processes (``processes``)."""
