"""What the deployment files may name: the metrics the code exports."""

from __future__ import annotations

from prometheus_client import REGISTRY

import connectors.webhook.metrics  # noqa: F401  (registers the webhook sink's metrics)
import touchstream.metrics  # noqa: F401  (registers every other metric)


def exported() -> set[str]:
    names = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    for metric in REGISTRY.collect():  # a labelled metric with no child yet has no samples
        names.add(metric.name)
        names.update(metric.name + suffix for suffix in suffixes.get(metric.type, ()))
        names.update(sample.name for sample in metric.samples)
    return names
