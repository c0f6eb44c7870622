"""The checked-in protobuf module is exactly what protoc makes of spec/maseir.proto."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_module_matches_proto(tmp_path):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'spec'}",
                    f"--python_out={tmp_path}", str(ROOT / "spec" / "maseir.proto")], check=True)
    fresh = (tmp_path / "maseir_pb2.py").read_text()
    checked_in = (ROOT / "maseir" / "_proto" / "maseir_pb2.py").read_text()
    assert fresh == checked_in, ("maseir/_proto/maseir_pb2.py is stale: regenerate it with "
                                 "python -m grpc_tools.protoc -Ispec --python_out=maseir/_proto spec/maseir.proto")
