"""The Kafka layer: the Faust app, its topics and tables, and the thin scoring agent."""
