"""The Kafka layer: every Kafka client of the project. The Faust app, its tables and the thin
scoring agents (`app`, `agents`), the topic names and configs (`topics`), the threshold feed the
workers read (`threshold_feed`), and the plain clients that publish and read records (`clients`)."""
