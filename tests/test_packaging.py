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
    from streams.app import warn_if_not_compiled

    assert warn_if_not_compiled() == []
