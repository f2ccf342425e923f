"""Profile state per OneID: traits, rolling aggregates, tags, scores, triggers."""
