"""The project's local stack runs Redis the way the guarantees need it (AOF on)."""


def test_local_redis_persists_with_aof(redis_client):
    # The stack starts Redis with AOF; a pre-existing server is used as it is, so only
    # assert when the server is ours (its dir is the project's .local/redis).
    directory = redis_client.config_get("dir")["dir"]
    if directory.endswith(".local/redis"):
        assert redis_client.config_get("appendonly")["appendonly"] == "yes"
    assert redis_client.ping() is True
