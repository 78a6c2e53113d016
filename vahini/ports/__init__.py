"""Ports: the small interfaces the write and read sides depend on. Each has an
embedded adapter (for one machine, no servers) and a real one (for a fleet)."""
