"""Local Apache Kafka and PostgreSQL for paysync development and tests, without Docker."""
