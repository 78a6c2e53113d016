"""Cache key layout, shared by the reader that fills the cache and the worker that invalidates it."""


def feature_cache_key(entity: str, group: str, key: str) -> str:
    return f"vf:{entity}:{group}:{key}"
