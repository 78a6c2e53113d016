"""Adapters: one module per (port, engine). `vahini.wiring` picks them from settings."""
