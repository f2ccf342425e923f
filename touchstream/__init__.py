"""Touchstream: an event-streaming customer data platform.

The path of one event is the layout: ``connectors`` (in: collector, importers; out: webhooks)
-> ``streams`` (the stage runtime: loops, stages, sinks, topics) -> ``identity`` (OneID) and
``profiles`` (state, rules, triggers); ``apps`` runs the processes. This package is the ground
they all stand on: settings, errors, metrics, API keys, text rules, YAML reading.
"""

__version__ = "0.1.0"
