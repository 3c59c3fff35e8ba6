"""examples/buf/buf.gen.go.yaml drives `buf generate` over protos/ as docs/quickstart.md says.

Go's plugins are not installed here, so stand-ins named `protoc-gen-go` and
`protoc-gen-go-grpc` are put on PATH: they record which files and options buf gave them.
This checks the template itself (inputs, plugin names, options, output folders).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.tooling.node import ROOT, require_buf

_PLUGIN = """#!{python}
import sys
from google.protobuf.compiler import plugin_pb2
request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
response = plugin_pb2.CodeGeneratorResponse(
    supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
)
for name in request.file_to_generate:
    out = response.file.add()
    out.name = name.replace(".proto", ".{plugin}.txt")
    out.content = request.parameter
sys.stdout.buffer.write(response.SerializeToString())
"""


def test_go_template_generates_every_contract_file(tmp_path: Path) -> None:
    buf = require_buf()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for plugin in ("go", "go-grpc"):
        script = bin_dir / f"protoc-gen-{plugin}"
        script.write_text(_PLUGIN.format(python=sys.executable, plugin=plugin))
        script.chmod(0o755)
    workdir = tmp_path / "repo"
    workdir.mkdir()
    (workdir / "protos").symlink_to(ROOT / "protos")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

    done = subprocess.run(
        [str(buf), "generate", "--template", str(ROOT / "examples/buf/buf.gen.go.yaml")],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    protos = sorted(p.name for p in (ROOT / "protos/switchboard/v1").glob("*.proto"))
    for plugin in ("go", "go-grpc"):
        out = workdir / "gen/go/switchboard/v1"
        made = sorted(p.name for p in out.glob(f"*.{plugin}.txt"))
        assert made == [name.replace(".proto", f".{plugin}.txt") for name in protos]
        assert (out / f"contacts.{plugin}.txt").read_text() == "paths=source_relative"
