"""Generate serving/api/*_pb2*.py, and the client SDK's copy of the three services'
code (clients/python/src/vahini_client/_proto), from schemas/proto (run: make proto).

The generated files are checked in, so installing Vahini or its client needs no
protoc; tests/serving/test_generated_code.py fails when either is stale.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from vahini.schemas import PROTO_DIR

OUT_DIR = Path(__file__).resolve().parent
PROTOS = ("feature_service.proto", "interaction_service.proto", "model_proxy.proto", "kserve_v2.proto")
CLIENT_DIR = OUT_DIR.parent.parent / "clients" / "python" / "src" / "vahini_client" / "_proto"
CLIENT_PROTOS = PROTOS[:3]  # what a ranker calls; kserve_v2 is the servers' side of model calls


def generate(out_dir: Path, protos: tuple[str, ...] = PROTOS, package: str = "vahini.serving.api") -> list[Path]:
    from grpc_tools import protoc

    args = ["grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}", *(str(PROTO_DIR / p) for p in protos)]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = sorted(out_dir.glob("*_pb2*.py*"))
    for path in written:
        # protoc writes top-level imports; make them package-relative.
        text = re.sub(r"^import (\w+_pb2) as", rf"from {package} import \1 as", path.read_text(), flags=re.M)
        path.write_text(text)
    return written


def _targets() -> list[tuple[Path, tuple[str, ...], str]]:
    return [(OUT_DIR, PROTOS, "vahini.serving.api"), (CLIENT_DIR, CLIENT_PROTOS, "vahini_client._proto")]


def main() -> int:
    for out_dir, protos, package in _targets():
        for path in generate(out_dir, protos, package):
            print(f"wrote {path.relative_to(OUT_DIR.parent.parent)}")
    return 0


def stale_files() -> list[str]:
    """Paths of generated files that differ from what the protos produce now."""
    stale = []
    for out_dir, protos, package in _targets():
        with tempfile.TemporaryDirectory() as tmp:
            fresh = {p.name: p.read_text() for p in generate(Path(tmp), protos, package)}
        stale += [str(out_dir / name) for name, text in fresh.items()
                  if not (out_dir / name).exists() or (out_dir / name).read_text() != text]
    return stale


if __name__ == "__main__":
    sys.exit(main())
