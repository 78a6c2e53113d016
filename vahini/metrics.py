"""Prometheus metrics shared by the write and the read side (both use the feature
cache and the row-building code in the core)."""

from prometheus_client import Counter, Gauge

# Labelled by dependency ("feature cache", "interaction hot tier"): each has a breaker of its own.
CACHE_CIRCUIT_OPEN = Gauge("vahini_cache_circuit_open", "1 while the dependency is bypassed as unhealthy",
                           ["dependency"])
CACHE_CIRCUIT_OPENED = Counter("vahini_cache_circuit_opened_total", "Times the dependency's circuit breaker opened",
                               ["dependency"])
CACHE_BYPASSED = Counter("vahini_cache_bypassed_total", "Calls skipped while the dependency's circuit was open",
                         ["dependency", "operation"])
CACHE_EPOCH_BUMPS = Counter("vahini_cache_epoch_bumps_total",
                            "Cache epochs started because a write could not fence its cached entries")
ROWS_EXPIRED_ON_ARRIVAL = Counter("vahini_rows_expired_on_arrival_total",
                                  "Valid rows not written because their event time is older than the group's ttl_s",
                                  ["group"])
UNREADABLE_VALUES = Counter("vahini_unreadable_values_total",
                            "Stored values that could not be decoded (served with status UNREADABLE)",
                            ["group", "reason"])
CONFIG_WATCH_ERRORS = Counter("vahini_config_watch_errors_total",
                              "Published config documents that could not be applied (the previous one stays)",
                              ["document"])
PARTITION_MOVES = Counter("vahini_consumer_partition_moves_total",
                          "Partitions this consumer was assigned, had revoked, or lost (its membership "
                          "expired): every move is a rebalance the group went through", ["event"])
COMMIT_FAILURES = Counter("vahini_commit_failures_total",
                          "Offset commits that failed: 'rebalance' (partition moved on; a replay) or 'error' (retried)",
                          ["kind"])
