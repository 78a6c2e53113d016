"""Vahini core: settings, registry, codecs, ports, adapters and the CLI shared by
the write side (`streams`) and the read side (`serving`)."""

__version__ = "0.1.0"
