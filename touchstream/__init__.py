"""Touchstream: an event-streaming customer data platform.

The path of one event is the layout: ``connectors`` (in: collector, importers; out: webhooks,
lake) -> ``streams`` (Faust app, agents, topics) -> ``identity`` (OneID) -> ``profiles``
(state, rules, triggers). This package holds what all of them share: settings, errors,
metrics and the command line.
"""

__version__ = "0.1.0"
