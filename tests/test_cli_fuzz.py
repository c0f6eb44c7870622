"""Hypothesis over the writing commands (export, apply, lower, import): argument combinations
and output targets of every kind. Whatever the combination: never an internal error (exit 3),
never a traceback, and no file changed except the named output (a symlink's target) and its
external data; a command that fails changes nothing at all.

Commands run in process (``maseir.cli.main.main``), each example in a fresh folder.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import maseir
from maseir.cli.main import main
from outputs import changed, make_sources, snapshot

LONG = "n" * 251
TARGETS = [
    "out.mir", "out.onnx", "existing.mir", "link.mir", "dangling.mir", "loop.mir", "stdout-link", "-",
    "folder", "folder/", "new/", "missing/x.mir", "notes.txt/x.mir", "ro/x.mir", "/proc/maseir-fuzz.mir",
    "/sys/maseir-fuzz.onnx", LONG + ".mir", LONG + ".onnx", "n" * 256, "{input}", "{input}.data",
    "x.pass", "x.data", "",
]
STEPS = ["count dropout", "remove dropout", "count linear", "report", "count", "remove linear", "bogus step"]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    return make_sources(tmp_path_factory.mktemp("fuzz-sources"))


def fresh_folder(sources: Path) -> Path:
    """A copy of the inputs plus one of each kind of output target."""
    folder = Path(tempfile.mkdtemp(prefix="maseir-fuzz-"))
    shutil.copytree(sources, folder, dirs_exist_ok=True)
    (folder / "existing.mir").write_bytes(b"an old file")
    (folder / "folder").mkdir()
    (folder / "folder" / "real.mir").write_bytes(b"the link's target")
    os.symlink("folder/real.mir", folder / "link.mir")
    os.symlink("gone.mir", folder / "dangling.mir")
    os.symlink("loop.mir", folder / "loop.mir")
    os.symlink("/proc/self/fd/1", folder / "stdout-link")
    (folder / "ro").mkdir(mode=0o555)
    return folder


@st.composite
def invocations(draw):
    """(arguments, the -o target or None, what the command writes)."""
    command = draw(st.sampled_from(["export", "apply", "lower", "import"]))
    model = draw(st.sampled_from(["mlp.mir", "e.mir"]))
    if command == "export":
        args, source, kind = ["export", "bert", "--random-init", "--seed", str(draw(st.integers(0, 2)))], "bert", "mir"
    elif command == "apply":
        steps = draw(st.lists(st.sampled_from(STEPS), min_size=1, max_size=3))
        args, source, kind = ["apply", *[a for s in steps for a in ("-e", s)], model], model, "mir"
    elif command == "lower":
        args, source, kind = ["lower", model, "--to", "onnx"], model, "onnx"
        if draw(st.booleans()):
            args += ["--opset", str(draw(st.sampled_from([5, 21])))]
    else:
        args, source, kind = ["import", "mlp.onnx"], "mlp.onnx", "mir"
    target = draw(st.sampled_from(TARGETS + ([None] if command == "apply" else [])))
    if target is not None:
        target = target.format(input=source)
        args += ["-o", target]
    if command != "apply" and draw(st.booleans()):
        args += ["--external-data-threshold", str(draw(st.sampled_from([0, 1, 4096])))]
    for flag in ("--json", "--force"):
        if draw(st.booleans()):
            args.append(flag)
    return args, target, kind


def run_in(folder: Path, args) -> tuple[int, str]:
    """``main(args)`` in ``folder``: (exit status, stdout + stderr)."""
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exc:  # argparse: a usage error
                code = exc.code
    finally:
        os.chdir(cwd)
    return code, out.getvalue() + err.getvalue()


def allowed_changes(folder: Path, target: str | None) -> set[str]:
    """The entries a command may change: where the target resolves inside ``folder``, and its .data."""
    if not target or target == "-":
        return set()
    resolved = Path(os.path.realpath(folder / target))
    try:
        relative = resolved.relative_to(folder.resolve())
    except ValueError:  # outside the folder (/proc, /sys, a descriptor)
        return set()
    return {str(relative), f"{relative}.data"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invocation=invocations())
def test_writing_commands_never_crash_and_touch_only_their_output(sources, invocation):
    args, target, kind = invocation
    folder = fresh_folder(sources)
    try:
        allowed = allowed_changes(folder, target)
        before = snapshot(folder)
        code, text = run_in(folder, args)
        assert code in (0, 2), (args, code, text)
        assert "Traceback" not in text, (args, text)
        if code == 2:
            assert "maseir: error: " in text or "usage: maseir" in text, (args, text)
        touched = changed(before, snapshot(folder))
        if code != 0:
            assert touched == set(), (args, text, touched)
        assert touched <= allowed, (args, text, touched - allowed)
        written = Path(os.path.realpath(folder / target)) if target else None
        if code == 0 and str(written).startswith(f"{folder.resolve()}/") and written.exists():
            if kind == "onnx":
                onnx.checker.check_model(str(written), full_check=True)
            else:
                assert maseir.check(maseir.load(written)) == []
        assert not os.path.exists("/proc/maseir-fuzz.mir") and not os.path.exists("/sys/maseir-fuzz.onnx")
    finally:
        os.chmod(folder / "ro", 0o755)
        shutil.rmtree(folder)
