"""The offline side: feature-log exports and point-in-time training sets, built from
the Model Proxy's own graph code (vahini.serving.model_proxy) over the archive."""
