"""One module per agent; each exposes ``register(app, topics)``."""
