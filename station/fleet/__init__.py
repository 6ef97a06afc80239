"""Fleet: many stations, one security desk and one fleet log, on Mosquitto (MQTT v5) and PostgreSQL.
The station side publishes its log's rows from an outbox; the central side ingests them idempotently and
says what it holds. May import log, screen and the shared modules; only headless and cli import it.
"""
