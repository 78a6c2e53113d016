"""Generate serving/api/*_pb2*.py from schemas/proto (run: make proto).

The generated files are checked in, so installing Vahini needs no protoc;
tests/serving/test_generated_code.py fails when they are stale.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from schemas import PROTO_DIR

OUT_DIR = Path(__file__).resolve().parent
PROTOS = ("feature_service.proto", "interaction_service.proto", "model_proxy.proto", "kserve_v2.proto")


def generate(out_dir: Path) -> list[Path]:
    from grpc_tools import protoc

    args = ["grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}", *(str(PROTO_DIR / p) for p in PROTOS)]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = sorted(out_dir.glob("*_pb2*.py*"))
    for path in written:
        # protoc writes top-level imports; make them package-relative.
        text = re.sub(r"^import (\w+_pb2) as", r"from serving.api import \1 as", path.read_text(), flags=re.M)
        path.write_text(text)
    return written


def main() -> int:
    for path in generate(OUT_DIR):
        print(f"wrote {path.relative_to(OUT_DIR.parent.parent)}")
    return 0


def stale_files() -> list[str]:
    """Names of generated files that differ from what the proto produces now."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p.read_text() for p in generate(Path(tmp))}
    return [name for name, text in fresh.items()
            if not (OUT_DIR / name).exists() or (OUT_DIR / name).read_text() != text]


if __name__ == "__main__":
    sys.exit(main())
