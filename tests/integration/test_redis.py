def test_write_and_read_real_redis(redis_client, settings):
    key = f"{settings.redis_prefix}hello"
    redis_client.hset(key, mapping={"a": "1", "b": "2"})
    redis_client.hincrby(key, "a", 41)
    assert redis_client.hgetall(key) == {b"a": b"42", b"b": b"2"}


def test_local_redis_persists_with_aof(redis_client):
    # The stack starts Redis with AOF; a pre-existing server is used as it is, so only
    # assert when the server is ours (its dir is the project's .local/redis).
    directory = redis_client.config_get("dir")["dir"]
    if directory.endswith(".local/redis"):
        assert redis_client.config_get("appendonly")["appendonly"] == "yes"
    assert redis_client.ping() is True
