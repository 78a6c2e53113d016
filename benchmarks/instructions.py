"""Instructions per unit of work, counted by callgrind: a measure that holds still on a
shared machine whose speed drifts by 2x within the hour, where CPU time does not.

    .venv/bin/python -m benchmarks.instructions ingest [--events 15000] [--baseline-tree PATH]
    .venv/bin/python -m benchmarks.instructions model-proxy [--size 100] [--requests 50] [--grpc]
    .venv-bench/bin/python -m benchmarks.instructions model-proxy --feast
    .venv/bin/python -m benchmarks.instructions interactions [--workload sessions] [--baseline-tree PATH]

Needs valgrind (Debian: `apt-get install valgrind`) and the real services (make
services-start). Each subject runs in a process of its own under `valgrind
--tool=callgrind --instr-atstart=no`; collection is switched on (callgrind_control)
only around the measured calls, after a warm-up, with the cyclic GC off meanwhile:

- ingest: `FeatureIngestWorker.process` (decode, check and encode, merge, store write,
  dead letters, cache fence, commit) on batches of 5,000 records of the realistic mix,
  consumed into memory first, so Kafka's consume is left out. Every thread is counted:
  the store writes on a thread of its own. `--baseline-tree` runs a checkout of another
  commit (`git worktree add /tmp/base b871cab`) on the same records, into a keyspace
  and cache namespace of its own.
- model-proxy: `ModelProxyServicer.GetFeatures` in process (no gRPC) for bench_ranker,
  one user and `--size` products, every value served from Redis, on the data of
  benchmarks/model_proxy.py; the main thread is counted. In the same run: the raw
  ceiling (one redis-py pipeline decoded into numpy) and, with `--feast` from
  .venv-bench (make bench-model-proxy), Feast's two `get_online_features` calls.
  With `--grpc`, also whole servers called over gRPC, every thread of theirs counted:
  `vahini serve` and the benchmark's gRPC floor (benchmarks/model_proxy_floor.py, a
  handler that does no work): what one request costs a serving process, transport
  included, and the transport's share of it.

- interactions: the interaction worker's batch loop (adopt partitions, decode, apply to
  the hot and cold tiers, close idle sessions, windowed counts, dead letters, commit)
  on batches of `interactions.batch_size` records of benchmarks/interaction_cpu.py's
  workloads, consumed into memory first. Every thread is counted. `--baseline-tree` as
  for ingest.

Code runs 20-60x slower under callgrind than natively: keep the counts small. The same
subject counted twice agrees within 1% here, so a difference of a few percent between
two commits is real, which a CPU-time A/B on this machine cannot show.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve()
TREE = HERE.parent.parent
BATCH = 5000


# -- in the measured process -------------------------------------------------------------------------
def _counted(work) -> None:
    """Run `work` with callgrind collecting and the cyclic GC off (a collection's cost
    depends on the heap, not on the work measured)."""
    gc.collect()
    gc.freeze()
    gc.disable()
    _control("-i", "on", os.getpid())
    work()
    _control("-i", "off", os.getpid())


def _program_module(name: str):
    """streams/<name>.py of the tree under measure: vahini.streams.<name>, or in a checkout
    from before the programs moved under the vahini namespace, streams.<name>."""
    import importlib

    try:
        return importlib.import_module(f"vahini.streams.{name}")
    except ModuleNotFoundError:
        return importlib.import_module(f"streams.{name}")


def _child_ingest() -> int:
    """Run from the tree under measure (first on sys.path): only its own modules are imported."""
    app = _program_module("app")
    Backends, build_worker = app.Backends, app.build_worker
    from vahini.settings import load_settings

    tree = os.environ["VAHINI_INSTR_TREE"]
    assert app.__file__.startswith(tree), f"measuring {app.__file__}, not the tree {tree}"
    settings = load_settings()
    worker = build_worker(settings, Backends.open(settings))
    wanted, records = int(os.environ["VAHINI_INSTR_EVENTS"]), []
    deadline = time.monotonic() + 300
    while len(records) < wanted and time.monotonic() < deadline:
        records += worker._consumer.poll_batch(BATCH, 0.5)
    assert len(records) >= wanted, f"consumed {len(records)} of {wanted} records in 300 s"
    batches = [records[i:i + BATCH] for i in range(0, wanted, BATCH)]
    worker.process(batches[0])  # prepared statements, plans, connections
    _counted(lambda: [worker.process(b) for b in batches[1:]])
    return sum(map(len, batches[1:]))


def _child_interactions() -> int:
    """The interaction worker's loop, one step per batch, on records consumed into memory first."""
    app = _program_module("app")
    build_interaction_worker, window_writer = app.build_interaction_worker, _program_module("windows").window_writer
    from vahini import wiring
    from vahini.registry.publish import RegistryFollower
    from vahini.settings import load_settings

    tree = os.environ["VAHINI_INSTR_TREE"]
    assert app.__file__.startswith(tree), f"measuring {app.__file__}, not the tree {tree}"
    settings = load_settings()
    store = wiring.feature_store(settings)
    follower = RegistryFollower(wiring.config_store(settings))
    worker = build_interaction_worker(settings, wiring.event_log(settings), wiring.cold_interactions(settings),
                                      wiring.interaction_hot_tier(settings),
                                      window_writer(settings, store, wiring.feature_cache(settings, store),
                                                    lambda: follower.current))
    size, wanted, records = settings.interactions.batch_size, int(os.environ["VAHINI_INSTR_EVENTS"]), []
    deadline = time.monotonic() + 300
    while len(records) < wanted and time.monotonic() < deadline:
        records += worker._consumer.poll_batch(size, 0.5)
    assert len(records) >= wanted, f"consumed {len(records)} of {wanted} records in 300 s"

    def step(batch) -> None:  # what InteractionWorker.run does with one polled batch
        worker._follow_assignment()
        worker._process(batch)
        worker._end_idle_sessions()
        worker._finish_batch()
    batches = [records[i:i + size] for i in range(0, len(records), size)]
    step(batches[0])  # prepared statements, scripts, connections
    _counted(lambda: [step(b) for b in batches[1:]])
    return sum(map(len, batches[1:]))


def _child_model_proxy(subject: str) -> int:
    from benchmarks import model_proxy as mp
    from vahini.settings import load_settings

    size, n = int(os.environ["VAHINI_INSTR_SIZE"]), int(os.environ["VAHINI_INSTR_REQUESTS"])
    requests = mp.requests_of(size, n + 10, seed=size)
    if subject == "feast":
        call = mp.Feast()
    elif subject == "raw":
        from vahini import wiring
        from vahini.registry import publish
        settings = load_settings()
        call = mp.RawCeiling(settings, publish.read_published(wiring.config_store(settings)))
    else:
        call, _ = _in_process_servicer(load_settings())
    for r in requests[:10]:
        call(r)
    _counted(lambda: [call(r) for r in requests[10:]])
    return n


def _in_process_servicer(settings):
    """(call, close): GetFeatures as `vahini serve` wires it, called without gRPC, the reply
    serialized as gRPC would; and what closes its clients."""
    from vahini.serving.api import model_proxy_pb2 as mpb
    from vahini.serving.server import open_read_side

    side = open_read_side(settings)
    servicer = side.model_proxy(settings)

    class Context:  # what GetFeatures asks of grpc.ServicerContext on success
        def time_remaining(self):
            return 60.0

    def call(request):
        user, products = request
        message = mpb.GetFeaturesRequest(model="bench_ranker", context={
            "user_id": mpb.ContextIds(ids=[user]), "product_ids": mpb.ContextIds(ids=products)})
        return servicer.GetFeatures(message, Context()).SerializeToString()
    return call, side.close


def child_main(role: str) -> int:
    sys.path.insert(0, os.environ["VAHINI_INSTR_TREE"])
    units = {"ingest": _child_ingest, "interactions": _child_interactions}.get(role, lambda: _child_model_proxy(role))()
    Path(os.environ["VAHINI_INSTR_UNITS"]).write_text(str(units))
    os._exit(0)  # skip the clients' shutdown: nothing more is measured


# -- in the driving process --------------------------------------------------------------------------
def count(role: str, env: dict, tree: Path) -> tuple[float, float, int]:
    """(instructions of the main thread, of all threads, units of work) of one subject."""
    with tempfile.TemporaryDirectory(prefix="vahini-instr-") as out:
        units = Path(out) / "units"
        env = {**env, "VAHINI_INSTR_TREE": str(tree), "VAHINI_INSTR_UNITS": str(units), "VAHINI_LOG_LEVEL": "ERROR"}
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
               f"--callgrind-out-file={out}/cg.out", sys.executable, str(HERE), "--child", role]
        done = subprocess.run(cmd, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0 or not units.exists():
            sys.exit(f"{role} in {tree} failed under callgrind:\n{done.stderr[-3000:]}")
        per_thread = [_totals(p) for p in sorted(Path(out).glob("cg.out-*"))]
        keep = os.environ.get("VAHINI_INSTR_KEEP")  # a folder: keep the profiles, for callgrind_annotate
        if keep:
            for p in Path(out).glob("cg.out-*"):
                shutil.copy(p, Path(keep) / f"{role}.{tree.name}.{p.name}")
        return per_thread[0], sum(per_thread), int(units.read_text())


def _totals(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    return 0


def ingest(args) -> None:
    from benchmarks.common import real_settings, synthesize, table
    from benchmarks.ingest import env_for, load_topic
    from vahini import wiring
    from vahini.demo import SAMPLE_REGISTRY
    from vahini.registry import publish

    run = uuid.uuid4().hex[:8]
    settings = real_settings(run, "unused")
    config = wiring.config_store(settings)
    publish.apply(SAMPLE_REGISTRY, config)
    config.close()
    topic = f"bench-instr-{run}"
    events = args.events + BATCH  # the first batch warms up
    load_topic(settings, topic, 4, synthesize(events))
    trees = [("this checkout", TREE)]
    if args.baseline_tree:
        trees.insert(0, ("baseline", Path(args.baseline_tree).resolve()))
    measured = []
    for i, (name, tree) in enumerate(trees):  # each its own group, keyspace and cache namespace
        # Only settings every commit knows (env_for, as --paired-with uses): an older one refuses newer fields.
        env = {**env_for(settings, f"bench_instr_{run}_{i}", f"instr-{run}-{i}", topic),
               "VAHINI_CACHE__NAMESPACE": f"bench-instr-{run}-{i}", "VAHINI_INSTR_EVENTS": str(events)}
        print(f"counting {name} ({tree}) ...", flush=True)
        _, every, units = count("ingest", env, tree)
        measured.append((name, tree, every / units))
    base = measured[0][2]
    rows = [[name, _commit(tree), f"{per / 1e3:.1f}", f"{per / base:.2f}"] for name, tree, per in measured]
    print(table(f"FeatureIngestWorker.process, {args.events:,} events of the realistic mix, all threads (callgrind)",
                ["code", "commit", "K instructions / event", "vs first row"], rows))


def interactions(args) -> None:
    from benchmarks.common import table
    from benchmarks.interaction_cpu import produce, workload_topic
    from benchmarks.windows import env as worker_env

    run = uuid.uuid4().hex[:8]
    settings = workload_topic(run, f"bench-instr-ia-{run}", "unused")
    events = produce(settings, args.workload, args, seed=1)
    trees = [("this checkout", TREE)]
    if args.baseline_tree:
        trees.insert(0, ("baseline", Path(args.baseline_tree).resolve()))
    measured = []
    for i, (name, tree) in enumerate(trees):
        env = {**worker_env(settings, f"bench_instr_ia_{run}_{i}", f"instr-ia-{run}-{i}", f"{run}-{i}"),
               "VAHINI_INSTR_EVENTS": str(events), "VAHINI_INTERACTIONS__BATCH_SIZE": str(args.batch_size)}
        print(f"counting {name} ({tree}) ...", flush=True)
        _, every, units = count("interactions", env, tree)
        measured.append((name, tree, every / units))
    base = measured[0][2]
    rows = [[name, _commit(tree), f"{per / 1e3:.1f}", f"{per / base:.2f}"] for name, tree, per in measured]
    print(table(f"Interaction worker, {args.workload} workload, {events:,} events in batches of {args.batch_size}, "
                f"all threads (callgrind)", ["code", "commit", "K instructions / event", "vs first row"], rows))


def model_proxy(args) -> None:
    from benchmarks import model_proxy as mp
    from benchmarks.common import REDIS, real_settings, table
    from tests.streams.processes import settings_env
    from vahini.settings import InteractionSettings

    run = uuid.uuid4().hex[:8]
    settings = real_settings(run, f"bench_instr_{run}").model_copy(update={"interactions": InteractionSettings(
        hot_tier=REDIS, namespace=f"bench-ih-{run}")})
    # Code runs 20-60x slower under callgrind: a 25 ms cache timeout could count a slow read as an outage.
    settings = settings.model_copy(update={"cache": settings.cache.model_copy(update={"timeout_ms": 5000})})
    print(f"loading the data of benchmarks/model_proxy.py ({mp.USERS} users, {mp.PRODUCTS} products) ...", flush=True)
    mp.load_vahini(settings)
    call, close = _in_process_servicer(settings)
    mp.warm(call)  # natively: every value in Redis before anything is counted
    close()
    env = {**settings_env(settings), "VAHINI_INSTR_SIZE": str(args.size), "VAHINI_INSTR_REQUESTS": str(args.requests)}
    subjects = [("raw ceiling: one redis-py pipeline + numpy (baseline)", "raw"),
                ("Vahini ModelProxy GetFeatures, in process", "vahini")]
    if args.feast:
        subjects.append(("Feast get_online_features x 2", "feast"))
    rows, base = [], None
    for name, role in subjects:
        print(f"counting {name} ...", flush=True)
        main_thread, _, units = count(role, env, TREE)
        per = main_thread / units
        base = base or per
        rows.append([name, f"{per / 1e6:.2f}", f"{per / base:.2f}"])
    print(table(f"One request of 1 user x {args.size} products, main thread, {args.requests} requests (callgrind)",
                ["path", "M instructions / request", "vs raw ceiling"], rows))
    if args.grpc:
        _count_servers(args, env)


def _count_servers(args, env: dict) -> None:
    from benchmarks import model_proxy as mp
    from benchmarks.common import table

    requests = mp.requests_of(args.size, args.requests + 10, seed=args.size)
    print("counting vahini serve over gRPC ...", flush=True)
    served, columns = count_server(["vahini.serving", "--port"], env, requests)
    print("counting the gRPC floor ...", flush=True)
    floor, _ = count_server(["benchmarks.model_proxy_floor", str(columns)], env, requests)  # as wide a reply
    rows = [["vahini serve: GetFeatures over gRPC", f"{served / 1e6:.2f}", "1.00"],
            ["gRPC floor: a handler that does no work", f"{floor / 1e6:.2f}", f"{floor / served:.2f}"]]
    print(table(f"One request of 1 user x {args.size} products, whole server process, every thread, "
                f"{args.requests} requests (callgrind)", ["server", "M instructions / request", "share"], rows))


def count_server(module_args: list[str], env: dict, requests, warm: int = 10) -> tuple[float, int]:
    """(instructions per request of a gRPC server process, every thread; columns of its
    matrix), the server called from here."""
    from benchmarks import model_proxy as mp
    from vahini_client import VahiniClient
    from tests.services import free_port, port_open

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="vahini-instr-") as out:
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
               f"--callgrind-out-file={out}/cg.out", sys.executable, "-m", *module_args, str(port)]
        server = subprocess.Popen(cmd, env={**env, "VAHINI_LOG_LEVEL": "ERROR"}, cwd=TREE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 300
            while not port_open("127.0.0.1", port):
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"{module_args[0]} did not start under callgrind")
                time.sleep(0.5)
            with VahiniClient(f"127.0.0.1:{port}", timeout_s=120.0) as client:
                call = mp.vahini_call(client)
                columns = [call(r).shape[1] for r in requests[:warm]][-1]
                _control("-i", "on", server.pid)
                for r in requests[warm:]:
                    call(r)
                _control("-i", "off", server.pid)
                _control("--dump", server.pid)  # written now: a graceful stop takes minutes under callgrind
        finally:
            server.kill()
            server.wait(60)
        return sum(_totals(p) for p in Path(out).glob("cg.out*")) / (len(requests) - warm), columns


def _control(*args) -> None:
    subprocess.run(["callgrind_control", *map(str, args)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def _commit(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + ("+changes" if dirty else "")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        return child_main(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    i = sub.add_parser("ingest", help="instructions per event of the ingest worker")
    i.add_argument("--events", type=int, default=15000, help="events counted (one more batch warms up)")
    i.add_argument("--baseline-tree", help="a checkout of another commit, counted on the same records")
    m = sub.add_parser("model-proxy", help="instructions per GetFeatures request, beside the raw ceiling")
    m.add_argument("--size", type=int, default=100, help="candidate products per request")
    m.add_argument("--requests", type=int, default=50, help="requests counted (10 more warm up)")
    m.add_argument("--feast", action="store_true", help="count Feast too (run from .venv-bench)")
    m.add_argument("--grpc", action="store_true", help="also count whole servers called over gRPC: vahini serve "
                   "and the gRPC floor, every thread")
    ia = sub.add_parser("interactions", help="instructions per event of the interaction worker")
    ia.add_argument("--workload", choices=("sessions", "sessionless"), default="sessions")
    ia.add_argument("--sessions", type=int, default=300, help="sessions of the sessions workload")
    ia.add_argument("--users", type=int, default=300, help="users of the sessionless workload")
    ia.add_argument("--heavy", type=int, default=500, help="clicks of the sessionless workload's heavy user")
    ia.add_argument("--batch-size", type=int, default=500, help="records per batch (interactions.batch_size)")
    ia.add_argument("--baseline-tree", help="a checkout of another commit, counted on the same records")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("needs valgrind and callgrind_control on PATH (Debian: apt-get install valgrind)")
    {"ingest": ingest, "interactions": interactions, "model-proxy": model_proxy}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
