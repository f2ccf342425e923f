"""`make chaos` reuses the integration fixtures (the real stack, unique names per run)."""

from tests.integration.conftest import redis_client, run_id, settings, stack  # noqa: F401
