"""The RESP packer alone: is vahini.codecs._loops.redis_command worth keeping?

    .venv/bin/python -m benchmarks.resp_packer [--rounds 5]

Packs the commands the serving and ingest paths send, three ways, in turns within
each round, and prints each one's time per command with its ratio to hiredis:

  (a) redis_command, the compiled packer in vahini/codecs/_loops.pyx;
  (b) hiredis.pack_command, which vahini.adapters.redis_wire falls back to;
  (c) redis-py's own connection.pack_commands, the public path a pipeline takes.

The commands: a Model Proxy read (MGET of 300 cache keys: 1 user x 100 products
x 3 groups), a fence of 250 rows (an EVALSHA with 250 keys and 500 arguments),
and the interaction tier's small commands (ZADD, HGET). No server is needed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import hiredis
import redis

from benchmarks.common import table
from vahini.codecs import loops


def commands() -> dict[str, tuple]:
    keys = [f"v1:feat:product_stats:p{i:06d}" for i in range(300)]
    fence_keys = [f"v1:feat:user_profile:u{i}" for i in range(250)]
    fence_args = [x for i in range(250) for x in (str(1_796_000_000_000_000 + i), f"V{i:020d}")]
    return {"MGET of 300 keys": ("MGET", *keys),
            "EVALSHA fence of 250 rows": ("EVALSHA", "0" * 40, 250, *fence_keys, *fence_args),
            "ZADD of one timer": ("ZADD", "v1:ih:timers:17", 1_796_000_000_000, "u123456"),
            "HGET of one field": ("HGET", "v1:ih:user:u123456", "partition")}


def time_per_call(pack, command: tuple, budget_s: float = 0.2) -> float:
    """Seconds per call of `pack(command)`, over about `budget_s`."""
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(100):
            pack(command)
        n += 100
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s:
            return elapsed / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    compiled = loops.compiled
    if compiled is None:
        raise SystemExit("vahini.codecs._loops is not built: nothing to compare")
    connection = redis.Connection()
    packers = {"(a) compiled redis_command": compiled.redis_command,
               "(b) hiredis.pack_command": hiredis.pack_command,
               "(c) redis-py pack_commands": lambda c: connection.pack_commands([c])}
    for command in commands().values():  # all three write the same bytes
        assert compiled.redis_command(command) == hiredis.pack_command(command) == b"".join(
            connection.pack_commands([command]))
    rows = []
    for name, command in commands().items():
        times = {label: [] for label in packers}
        for _ in range(args.rounds):
            for label, pack in packers.items():
                times[label].append(time_per_call(pack, command))
        base = statistics.median(times["(b) hiredis.pack_command"])
        for label, got in times.items():
            rows.append([name, label, f"{statistics.median(got) * 1e6:.2f}", f"{statistics.median(got) / base:.2f}x"])
    print(table(f"Packing one command as RESP, median of {args.rounds} rounds (redis-py {redis.__version__}, "
                f"hiredis {hiredis.__version__})", ["command", "packer", "µs per command", "vs hiredis"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
