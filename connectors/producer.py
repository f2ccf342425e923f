"""The producers live beside the stream loops now (``streams/producers.py``); kept for callers."""

from __future__ import annotations

from streams.producers import AsyncProducer, BlockingProducer, DeliveryFailed, producer_config

__all__ = ["AsyncProducer", "BlockingProducer", "DeliveryFailed", "producer_config"]
