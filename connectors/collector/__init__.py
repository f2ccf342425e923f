"""The Segment-compatible HTTP collector: /v1/identify, track, page, screen, group, alias, batch, import."""
