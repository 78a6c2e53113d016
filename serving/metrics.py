"""Prometheus metrics of the read side."""

from prometheus_client import Counter, Histogram

CACHE_LOOKUPS = Counter("vahini_cache_lookups_total", "Feature cache lookups by tier and result",
                        ["tier", "result"])
RETRIEVE_SECONDS = Histogram("vahini_retrieve_seconds", "Latency of one feature retrieval",
                             buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
RETRIEVE_KEYS = Histogram("vahini_retrieve_keys", "Keys per retrieval", buckets=(1, 10, 50, 100, 500, 1000, 5000))
GRPC_REQUESTS = Counter("vahini_grpc_requests_total", "gRPC calls by method and status code", ["method", "code"])
GRPC_SECONDS = Histogram("vahini_grpc_request_seconds", "gRPC call latency by method", ["method"],
                         buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))
MODEL_CALLS = Counter("vahini_model_calls_total",
                      "ModelInfer calls to model endpoints, by endpoint, model and outcome (a gRPC status code, or "
                      "BAD_REPLY for an answer that holds no scores)", ["endpoint", "model", "code"])
MODEL_CALL_SECONDS = Histogram("vahini_model_call_seconds", "Latency of one ModelInfer call", ["endpoint", "model"],
                               buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))
MODEL_ROWS_SCORED = Counter("vahini_model_rows_scored_total", "Rows scored by model endpoints", ["endpoint", "model"])
MODEL_SCORES_DEFAULTED = Counter("vahini_model_scores_defaulted_total",
                                 "Requests whose score node served its default because the endpoint failed "
                                 "(on_outage: defaults)", ["model", "node"])
