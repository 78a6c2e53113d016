"""What `pip install vahini` brings: runtime dependencies only. Benchmark baselines stay
in the extras."""

import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_benchmark_baselines_are_not_runtime_dependencies():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    runtime = " ".join(project["dependencies"])
    for baseline in ("faust", "feast"):
        assert baseline not in runtime, f"{baseline} is a benchmark baseline: keep it in the bench and dev extras"
    assert any("faust" in d for d in project["optional-dependencies"]["bench"])


def test_every_compiled_module_of_the_write_side_is_built():
    # `make test` installs with a C compiler at hand: the workers would log compiled_modules_missing.
    from vahini.streams.app import warn_if_not_compiled

    assert warn_if_not_compiled() == []


def test_tests_do_not_import_the_benchmarks():
    # benchmarks/ is not installed: what a test needs from it belongs in the package (e.g. vahini.synthetic).
    import ast

    tests = PYPROJECT.parent / "tests"
    found = []
    for path in tests.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(tests)}:{node.lineno} imports {n}" for n in names
                      if n == "benchmarks" or n.startswith("benchmarks.")]
    assert not found, found


def test_the_core_does_not_import_the_programs():
    # vahini/ holds the ports, adapters, codecs and registry the programs share; the programs
    # (vahini.streams, vahini.serving, vahini.offline: the folders streams/, serving/ and
    # offline/, linked in) import it,
    # never the other way. The CLI, the demo and the console (vahini/cli, vahini/demo.py,
    # vahini.console: the folder console/) run the programs and sit above them.
    import ast

    core = PYPROJECT.parent / "vahini"
    programs = ("streams", "serving", "offline", "console")
    found = []
    for path in core.rglob("*.py"):
        if path.relative_to(core).parts[0] in ("cli", "demo.py", *programs, "schemas"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [f"vahini/{path.relative_to(core)}:{node.lineno} imports {n}" for n in names
                      if n.split(".")[0] in programs or n.split(".")[:2] in (["vahini", p] for p in programs)]
    assert not found, found


def test_installing_vahini_puts_only_the_vahini_namespace_into_site_packages(tmp_path):
    """The wheel `pip install .` installs: vahini, with the programs as vahini.streams,
    vahini.serving and vahini.schemas, and no top-level streams, serving or schemas.
    (Built without a compiler, which skips the optional compiled modules: faster.)"""
    import os
    import subprocess
    import sys
    import zipfile

    env = {**os.environ, "CC": "/bin/false", "CXX": "/bin/false"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(PYPROJECT.parent)], check=True, capture_output=True, timeout=600, env=env)
    [wheel] = tmp_path.glob("vahini-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"vahini"}
    for expected in ("vahini/streams/worker.py", "vahini/serving/server.py", "vahini/offline/training_set.py",
                     "vahini/console/app.py", "vahini/console/templates/model.html",
                     "vahini/console/static/htmx-2.0.11.min.js",
                     "vahini/schemas/avro/vahini.events.FeatureLog.avsc", "vahini/serving/api/model_proxy_pb2.py",
                     "vahini/schemas/avro/vahini.events.Interaction.avsc", "vahini/schemas/proto/model_proxy.proto",
                     "vahini/samples/registry/models.yaml"):
        assert expected in names, expected


def test_the_client_sdk_is_a_distribution_of_its_own_that_needs_only_grpc_protobuf_and_numpy(tmp_path):
    """clients/python builds a wheel holding vahini_client alone, whose only requirements
    are grpcio, protobuf and numpy (pandas and grpcio-reflection as extras)."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    client = Path(__file__).resolve().parents[1] / "clients" / "python"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(client)], check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("vahini_client-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"vahini_client"}
    assert "vahini_client/_proto/model_proxy_pb2_grpc.py" in names and "vahini_client/py.typed" in names
    required = sorted(line.split(":", 1)[1].strip() for line in metadata.splitlines()
                      if line.startswith("Requires-Dist:"))
    plain = [r.split(">")[0].split("<")[0].split("=")[0] for r in required if "extra ==" not in r]
    assert plain == ["grpcio", "numpy", "protobuf"], required
    assert any(r.startswith("pandas") and 'extra == "pandas"' in r for r in required), required
