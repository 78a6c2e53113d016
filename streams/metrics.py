"""Prometheus metrics of the write side."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("vahini_ingest_events_total", "Events consumed by ingestion", ["topic"])
ROWS_WRITTEN = Counter("vahini_ingest_rows_written_total", "Merged feature rows written to the store")
DEAD_LETTERS = Counter("vahini_dead_letters_total", "Events sent to the dead-letter topic", ["reason"])
BATCH_SIZE = Histogram("vahini_ingest_batch_size", "Events per processed batch",
                       buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 20000))
WRITE_SECONDS = Histogram("vahini_store_write_seconds", "Latency of one batch write to the feature store",
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RETRIES = Counter("vahini_ingest_retries_total",
                  "Steps of a batch retried after a service error (store_write, dead_letter, cache_fence, commit)", ["step"])
FRESHNESS_SECONDS = Histogram("vahini_feature_freshness_seconds",
                              "Now minus event time of rows written (how stale features are on arrival)",
                              buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400))
NEWEST_EVENT = Gauge("vahini_group_newest_event_timestamp_seconds",
                     "Event time of the newest row written per feature group, from the rows the freshness "
                     "histogram samples (up to 64 per batch); now minus it is the group's age", ["group"])
CONSUMER_LAG = Gauge("vahini_consumer_lag", "Records not yet consumed", ["topic", "partition"])
CACHE_INVALIDATION_ERRORS = Counter("vahini_cache_invalidation_errors_total",
                                    "Batches whose cache entries could not be fenced (a new cache epoch was started)")

INTERACTION_EVENTS = Counter("vahini_interaction_events_total", "Interaction and session events consumed")
SESSIONS = Counter("vahini_sessions_total",
                   "Session transitions: started, ended (END), idle (inactivity), end_without_session", ["outcome"])
OPEN_SESSIONS = Gauge("vahini_open_sessions", "Sessions this worker tracks in the hot tier")
FLUSHED = Counter("vahini_interactions_flushed_total", "Interactions flushed from the hot tier to the cold tier")
COLD_WRITES = Counter("vahini_cold_tier_writes_total", "Writes (partition mutations) to the interaction cold tier")
CHECKPOINTS = Counter("vahini_interaction_checkpoints_total", "Periodic flushes of open sessions")
HOT_TIER_RESETS = Counter("vahini_interaction_hot_tier_resets_total",
                          "Times the hot tier had lost its data and the worker replayed from the commit")
WINDOW_ROWS = Counter("vahini_window_rows_total", "Windowed-count feature rows written by the interaction worker")
