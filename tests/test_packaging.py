"""What the library reads at run time ships in the package."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "maseir").rglob("__init__.py")}
    assert found | {"maseir.spec"} == listed


@pytest.mark.slow
def test_wheel_ships_the_grammar_and_spec(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("maseir-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"maseir/spec/passes.lark", "maseir/spec/maseir.proto", "maseir/spec/ops.json",
            "maseir/_proto/maseir_pb2.py"} <= names
    # the grammar loads from the installed copy, not from the checkout
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = ("import maseir.dsl as d, maseir._spec as s, maseir.ops as o; assert 'site' in s.__file__; "
            "assert o.get('linear').tensor_args; print(d.parse('count dropout').steps[0].verb)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "count"


def test_a_checkout_reads_its_own_spec():
    # an editable install maps maseir.spec to the checkout it was made from; a worktree on
    # PYTHONPATH must still read its own grammar
    from maseir._spec import spec_text
    assert spec_text("passes.lark") == (ROOT / "spec" / "passes.lark").read_text(encoding="utf-8")
