"""Write side: Kafka (or the embedded log) -> decode/validate -> merge -> store -> cache."""
