"""The committed gRPC stubs must be what the proto compiles to today."""
import importlib.util
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
SCRIPT = PACKAGE / "scripts" / "generate_stubs.py"
COMMITTED = PACKAGE / "src" / "modelsync" / "_proto"

# Lines that only record which grpcio-tools/protobuf made the files.
_VERSION_STAMPS = [
    (re.compile(r"^# Protobuf Python Version: .*$", re.M), "# Protobuf Python Version: *"),
    (re.compile(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,"
                r"\s*\d+,\s*\d+,\s*\d+,"), "ValidateProtobufRuntimeVersion(*,"),
    (re.compile(r"^GRPC_GENERATED_VERSION = .*$", re.M), "GRPC_GENERATED_VERSION = *"),
]


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_stubs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _normalized(text: str) -> str:
    for pattern, replacement in _VERSION_STAMPS:
        text = pattern.sub(replacement, text)
    return text


def test_committed_stubs_match_the_proto(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools is a test dependency: pip install '.[test]'")
    generator = _load_generator()
    if not (generator.PROTO_ROOT / generator.PROTO_FILE).exists():
        pytest.skip(f"no proto at {generator.PROTO_ROOT}: not run from the repository")
    fresh = generator.generate(tmp_path)
    stale = [path.name for path in fresh
             if _normalized(path.read_text()) != _normalized((COMMITTED / path.name).read_text())]
    assert not stale, (f"{stale} in {COMMITTED} are stale: run "
                       f"`python {SCRIPT.relative_to(PACKAGE)}` in {PACKAGE} and commit them")


def test_stubs_import_inside_the_package():
    from modelsync._proto import modelsync_pb2, modelsync_pb2_grpc

    # The rewritten import: the package's own module, not a top-level `modelsync.v1`.
    assert modelsync_pb2_grpc.modelsync_dot_v1_dot_modelsync__pb2 is modelsync_pb2
    assert "Namespace" in modelsync_pb2.DESCRIPTOR.services_by_name["ModelSync"].methods_by_name
