"""Model calls: what one score node adds to a Model Proxy request, on real model servers.

    make services-start && bash infra/model-servers.sh install
    .venv/bin/python -m benchmarks.model_calls [--requests 1000] [--rounds 10] [--rows 100]

The Model Proxy benchmark's graph (benchmarks/model_proxy_registry: 1 user x 100
products, 100 columns, every value from Redis) is served by one `vahini serve`
process four ways, on the same requests taken in turns (the shared machine's speed
drifts within minutes, so every path gets every minute's speed alike):

- the matrix alone (the baseline);
- the same graph ending in one score node on the in-repo reference server
  (`vahini dev`'s linear scorer, KServe v2 gRPC in Python);
- on Seldon MLServer 1.7.1, scikit-learn runtime: a LogisticRegression,
  `output: predict_proba`, `column: 1`;
- on Triton (PyTriton 0.7.0, CPU): a numpy model with `max_batch_size: 64`, so
  `batch_size: 64` sends the 100 rows as two concurrent calls.

The model servers run on the same 2-core machine as Vahini and the services, so
their own compute is inside the figures: read the rows as the cost of a call to
a server on the same host, not across a network.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np

from benchmarks.common import REDIS, real_settings, table
from benchmarks.model_proxy import REGISTRY_DIR, in_turns, load_vahini, requests_of, vahini_server, warm
from vahini.serving.reference_model import start_model_server, LinearModel
from tests.model_servers import servers
from vahini.settings import InteractionSettings

NODES = {  # graph name -> (endpoint alias, its score node's endpoint fields)
    "bench_reference": ("reference", "model: ranker"),
    "bench_mlserver": ("mlserver", "model: lr, output: predict_proba, column: 1"),
    "bench_triton": ("triton", "model: ranker64, output: output_probability, column: 1, batch_size: 64"),
}


def registry_with_score_nodes(directory: Path) -> Path:
    """The benchmark registry, plus bench_ranker's graph once per model server, ending in a score node."""
    text = (REGISTRY_DIR / "registry.yaml").read_text()
    graph = text[text.index("  - name: bench_ranker\n"):]
    for name, (alias, fields) in NODES.items():
        text += graph.replace("  - name: bench_ranker\n", f"  - name: {name}\n", 1) + \
            f"    score:\n      - {{name: score, endpoint: {{target: {alias}, {fields}}}, timeout_ms: 2000}}\n"
    (directory / "registry.yaml").write_text(text)
    return directory


def call_of(client, model: str):
    def call(request):
        user, products = request
        return client.get_features(model, user_id=user, product_ids=products)
    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per path, in turns")
    parser.add_argument("--rounds", type=int, default=10, help="turns the paths take on the machine")
    parser.add_argument("--rows", type=int, default=100, help="candidate products per request")
    args = parser.parse_args()
    from vahini_client import VahiniClient

    run = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="vahini-bench-models-"))
    started = []
    try:
        (work / "mlserver").mkdir()
        (work / "triton").mkdir()
        mlserver, triton = servers.mlserver(work / "mlserver", columns=100), servers.triton(work / "triton")
        for server in (mlserver, triton):
            print(f"starting {server.name} ...", flush=True)
            server.start()
            started.append(server)
        reference, reference_port, _ = start_model_server({"ranker": LinearModel()})
        endpoints = {"reference": f"127.0.0.1:{reference_port}", "mlserver": mlserver.target,
                     "triton": triton.target}
        settings = real_settings(run, f"bench_mc_{run}").model_copy(update={
            "interactions": InteractionSettings(hot_tier=REDIS, namespace=f"bench-ih-{run}")})
        os.environ["VAHINI_SERVING__MODEL_ENDPOINTS"] = json.dumps(endpoints)  # read by vahini_server()
        print("loading the benchmark's users and products ...", flush=True)
        load_vahini(settings, registry_with_score_nodes(work))
        vahini = vahini_server(settings)
        try:
            with VahiniClient(vahini.target, timeout_s=5.0) as client:
                warm(call_of(client, "bench_ranker"))
                calls = {"bench_ranker": call_of(client, "bench_ranker"),
                         **{name: call_of(client, name) for name in NODES}}
                requests = requests_of(args.rows, args.requests, seed=args.rows)
                for name, call in calls.items():
                    reply = call(requests[0])
                    assert reply.matrix.shape[0] == args.rows and (name == "bench_ranker" or reply.scores), name
                lat = in_turns(calls, requests, args.rounds)
        finally:
            vahini.stop()
            reference.stop(0)
    finally:
        for server in started:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    base = lat["bench_ranker"]
    labels = {"bench_ranker": "the matrix alone (baseline)",
              "bench_reference": "+ score node: reference server (Python, KServe v2)",
              "bench_mlserver": "+ score node: MLServer 1.7.1 sklearn predict_proba",
              "bench_triton": "+ score node: Triton (PyTriton), 2 calls of <= 64 rows"}
    rows = [[labels[name], f"{np.percentile(v, 50):.2f}", f"{np.percentile(v, 99):.2f}",
             f"{np.percentile(v, 50) - np.percentile(base, 50):+.2f}",
             f"{np.percentile(v, 99) / np.percentile(base, 99):.2f}x"] for name, v in lat.items()]
    print(table(f"ModelProxy.GetFeatures, 1 user x {args.rows} products, 100 columns ({args.requests} sequential "
                f"requests per path, in {args.rounds} turns; one thread)",
                ["path", "p50 ms", "p99 ms", "p50 added ms", "p99 vs matrix alone"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
