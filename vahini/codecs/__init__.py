"""Wire and storage encodings: Avro single-object events and feature blobs."""
