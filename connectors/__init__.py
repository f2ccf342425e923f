"""Sources (HTTP collector, file importers) and sinks (webhooks) at the edge of the pipeline."""
