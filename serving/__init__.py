"""Read side: feature retrieval (in-process LRU -> Redis -> store) over gRPC."""
