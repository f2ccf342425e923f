"""Sources (HTTP collector, file importers) and sinks (webhooks, Parquet lake)."""
