"""The contracts: Avro schemas (.avsc) and the single-object codec."""
