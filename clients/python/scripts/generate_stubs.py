#!/usr/bin/env python3
"""Generates the gRPC stubs of the modelsync API into the Python package.

    python scripts/generate_stubs.py            # rewrite src/modelsync/_proto
    python scripts/generate_stubs.py --out DIR  # write them elsewhere

The stubs come from proto/modelsync/v1/modelsync.proto at the repository's
root, compiled with grpcio-tools, and are committed. protoc writes
`from modelsync.v1 import modelsync_pb2`, an import that would resolve
against this very package (also named `modelsync`), so it is rewritten into
a relative import. tests/test_stubs.py runs `generate` into a temporary
folder and fails when the committed files differ.
"""
import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parents[2] / "proto"
PROTO_FILE = "modelsync/v1/modelsync.proto"
PACKAGE_DIR = HERE.parent / "src" / "modelsync" / "_proto"
STUBS = ("modelsync_pb2.py", "modelsync_pb2.pyi", "modelsync_pb2_grpc.py")

_ABSOLUTE_IMPORT = "from modelsync.v1 import modelsync_pb2 as"
_RELATIVE_IMPORT = "from . import modelsync_pb2 as"


def generate(out_dir, proto_root=PROTO_ROOT):
    """Compiles the proto and writes the fixed-up stubs into `out_dir`."""
    from grpc_tools import protoc

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as raw:
        status = protoc.main([
            "grpc_tools.protoc",
            f"-I{proto_root}",
            f"--python_out={raw}",
            f"--pyi_out={raw}",
            f"--grpc_python_out={raw}",
            str(Path(proto_root) / PROTO_FILE),
        ])
        if status != 0:
            raise RuntimeError(f"protoc failed with status {status} on {proto_root / PROTO_FILE}")
        generated = Path(raw) / "modelsync" / "v1"
        for name in STUBS:
            text = (generated / name).read_text()
            if name.endswith("_grpc.py"):
                if _ABSOLUTE_IMPORT not in text:
                    raise RuntimeError(f"{name}: protoc's import line changed; update {__file__}")
                text = text.replace(_ABSOLUTE_IMPORT, _RELATIVE_IMPORT)
            (out_dir / name).write_text(text)
    return [out_dir / name for name in STUBS]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(PACKAGE_DIR), help="folder to write the stubs into")
    args = parser.parse_args()
    for path in generate(args.out):
        print(path)


if __name__ == "__main__":
    sys.exit(main())
