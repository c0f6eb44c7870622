"""Where the writing commands (export, apply, lower, import) write: only regular files are
replaced, everything else is written through or refused, and refusals come before the work.

Each command runs as the current user and, where that is root, also as nobody: root passes
every permission check, so the two see different folders as writable. As the current user a
command that does its work runs in a fresh interpreter; as nobody (who cannot read the
interpreter under /root), or where the test patches this process (a refusal that must come
before the work, a failing fsync), it runs in a forked child. torch.export can hang in a child
forked from this many-threaded process (a lock another thread held at the fork), so the
forked runs never export: export's refusals fail before any work, and its writes run as the
current user. Nothing here aims at a real device: FIFOs,
sockets, symlinks and a character-device stand-in (a copy of /dev/null's numbers, root only)
are made in temporary folders, and standard output is reached through a symlink to
/proc/self/fd/1 in such a folder.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import stat
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest
import torch

import maseir
from maseir.cli.main import main
from outputs import COMMANDS, EXT, changed, make_sources, snapshot

NOBODY = 65534
USERS = ["current"] + (["nobody"] if os.geteuid() == 0 else [])
FORKABLE = [c for c in COMMANDS if c != "export"]  # what a forked child may run to the end
WRITERS = [(u, c) for u in USERS for c in COMMANDS if u == "current" or c in FORKABLE]  # (user, command)
ERROR = "maseir: error: "

OTHER = {"mir": ".onnx", "onnx": ".mir"}


@dataclass
class Run:
    code: int
    out: bytes
    err: str
    fifo_bytes: bytes = b""

    @property
    def text(self) -> str:
        return self.out.decode(errors="replace") + self.err


def run(args, cwd: Path, user: str = "current", *, fifo: Path | None = None, tty: bool = False,
        fork: bool = False) -> Run:
    """``maseir ARGS`` (as ``user``), its stdout as bytes: in a fresh interpreter, or in a forked
    child as nobody, with ``tty`` (the child's stdout is a terminal) or with ``fork`` (the test
    patched this process). With ``fifo``, the parent reads that FIFO while the command runs
    (what it read is in ``Run.fifo_bytes``)."""
    if user == "current" and not tty and not fork:
        return _run_fresh(args, cwd, fifo)
    fifo_fd = master = slave = None
    received = bytearray()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        if tty:
            master, slave = os.openpty()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: run the command and exit; never return into pytest
            code = 99
            try:
                os.dup2(slave if tty else out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
                sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
                torch.set_num_threads(1)  # the parent's thread pool does not survive fork
                if user == "nobody":
                    os.setgroups([])
                    os.setgid(NOBODY)
                    os.setuid(NOBODY)
                os.chdir(cwd)
                code = main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 2
            except BaseException:
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        if fifo is not None:  # a reader must exist before the child can open the FIFO to write
            fifo_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            deadline = time.monotonic() + 300
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if fifo_fd is not None:
                    received += _drain(fifo_fd)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                time.sleep(0.005)
            if fifo_fd is not None:
                received += _drain(fifo_fd)
        finally:
            for fd in (fifo_fd, master, slave):
                if fd is not None:
                    os.close(fd)
        out.seek(0)
        err.seek(0)
        return Run(os.waitstatus_to_exitcode(status), out.read(), err.read().decode(errors="replace"),
                   bytes(received))


def _run_fresh(args, cwd: Path, fifo: Path | None) -> Run:
    """``maseir ARGS`` in a new interpreter (see :func:`run`)."""
    import subprocess
    received = bytearray()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen([sys.executable, "-m", "maseir.cli.main", *map(str, args)], cwd=cwd,
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        fifo_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK) if fifo is not None else None
        try:
            deadline = time.monotonic() + 300
            while child.poll() is None:
                if fifo_fd is not None:
                    received += _drain(fifo_fd)
                if time.monotonic() > deadline:
                    child.kill()
                time.sleep(0.005)
            if fifo_fd is not None:
                received += _drain(fifo_fd)
        finally:
            if fifo_fd is not None:
                os.close(fifo_fd)
        out.seek(0)
        err.seek(0)
        return Run(child.returncode, out.read(), err.read().decode(errors="replace"), bytes(received))


def _drain(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def assert_refused(result: Run, pattern: str) -> None:
    """Exit 2, one ``maseir: error:`` line matching ``pattern``, no traceback, nothing on stdout
    (so no work was reported either)."""
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR), lines
    assert re.search(pattern, lines[0]), lines[0]
    assert result.out == b""


def assert_valid(data: bytes, kind: str) -> None:
    """``data`` is a valid .mir (it loads and checks clean) or ONNX model (the checker passes)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"read-back{EXT[kind]}"
        path.write_bytes(data)
        assert_valid_file(path, kind)


def assert_valid_file(path: Path, kind: str) -> None:
    """The file at ``path`` (with its external data, if any) is a valid .mir or ONNX model."""
    if kind == "onnx":
        onnx.checker.check_model(str(path), full_check=True)
    else:
        assert maseir.check(maseir.load(path)) == []


# --- the folders ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """The inputs (see outputs.make_sources)."""
    folder = make_sources(tmp_path_factory.mktemp("sources"))
    # Run each command once here, so that every module they import is imported before the
    # forks: a child running as nobody cannot read the interpreter's files under /root.
    with tempfile.TemporaryDirectory() as scratch:
        for command in COMMANDS:
            args = [str(folder / a) if (folder / a).exists() else a for a in COMMANDS[command][0]]
            assert main([*args, "-o", os.path.join(scratch, "warm" + EXT[COMMANDS[command][2]])]) == 0
    return folder


@pytest.fixture(params=USERS)
def user(request) -> str:
    return request.param


@pytest.fixture
def place(sources, user):
    """A fresh folder that ``user`` owns, holding copies of the inputs and a folder inside."""
    folder = Path(tempfile.mkdtemp(prefix="maseir-out-"))
    shutil.copytree(sources, folder, dirs_exist_ok=True)
    (folder / "folder").mkdir()
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
        if user == "nobody":
            os.chown(path, NOBODY, NOBODY)
    yield folder
    for path in folder.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            os.chmod(path, 0o755)
    shutil.rmtree(folder)


@pytest.fixture
def forbid_work(monkeypatch):
    """Make the work of every writing command fail the test: a refusal must come first."""
    import maseir.cli.apply
    import maseir.cli.lower
    import maseir.frontends.onnx
    import maseir.frontends.transformers

    def work(*args, **kwargs):
        raise AssertionError("the work started before the output was refused")

    monkeypatch.setattr(maseir.frontends.transformers, "export_pretrained", work)
    monkeypatch.setattr(maseir.frontends.onnx, "import_onnx", work)
    monkeypatch.setattr(maseir.cli.apply, "load_valid", work)
    monkeypatch.setattr(maseir.cli.lower, "load_valid", work)


def command_args(command: str, output: str, *extra) -> list[str]:
    return [*COMMANDS[command][0], "-o", output, *extra]


# --- refused before the work: exit 2, one line, nothing changed --------------------------------
# name -> (output, with {ext} the command's extension, {other} another format's, {input} its
#          input; the error's pattern)
REFUSALS = {
    "directory": ("folder", r"folder: is a directory"),
    "directory-slash": ("folder/", r"folder/: is a directory"),
    "new-name-with-slash": ("new/", r"new/: names a folder"),
    "missing-folder": ("nope/x{ext}", r"nope/x\.\w+: folder nope does not exist"),
    "file-as-folder": ("notes.txt/x{ext}", r"notes\.txt is not a folder"),
    "proc": ("/proc/maseir-test{ext}", r"cannot (create files in|write to folder) /proc"),
    "sys": ("/sys/maseir-test{ext}", r"cannot (create files in|write to folder) /sys"),
    "name-too-long": ("n" * 252 + "{ext}", r"the file name is 25[67] bytes long; this file system allows 255"),
    "socket": ("sock{ext}", r"is a socket"),
    "symlink-loop": ("loop{ext}", r"(?i)too many levels of symbolic links"),
    "dangling-into-missing-folder": ("dangling{ext}", r"does not exist"),
    "input": ("{input}", r"must not be an input file"),
    "input-data": ("{input}.data", r"must not be an input file or its data"),
    "other-format": ("x{other}", r"name it \*\.\w+, or give --force"),
    "pipeline-name": ("x.pass", r"is for a pipeline; name it"),
    "empty": ("", r"the output file name is empty"),
}


def _refusal_cases():
    for case in REFUSALS:
        for command, (_, source, _) in COMMANDS.items():
            if source is None and "{input}" in REFUSALS[case][0]:
                continue
            yield pytest.param(case, command, id=f"{case}-{command}")


@pytest.mark.parametrize("case,command", list(_refusal_cases()))
def test_unwritable_output_is_refused_before_the_work(place, user, forbid_work, case, command):
    _, source, kind = COMMANDS[command]
    output, pattern = REFUSALS[case]
    output = output.format(ext=EXT[kind], other=OTHER[kind], input=source)
    if case == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(place / output))
    if case == "symlink-loop":
        os.symlink(output, place / output)
    if case == "dangling-into-missing-folder":
        os.symlink("nope/target.mir", place / output)
    if case == "name-too-long":
        assert os.pathconf(place, "PC_NAME_MAX") == 255
    before = snapshot(place)
    result = run(command_args(command, output), place, user, fork=True)
    assert_refused(result, pattern)
    assert snapshot(place) == before
    assert not os.path.exists(f"/proc/maseir-test{EXT[kind]}") and not os.path.exists(f"/sys/maseir-test{EXT[kind]}")


@pytest.mark.parametrize("command", ["export", "lower", "import"])
def test_external_data_that_cannot_go_with_the_output_is_refused(place, user, forbid_work, command):
    kind = COMMANDS[command][2]
    os.mkfifo(place / f"pipe{EXT[kind]}")
    (place / "folder" / f"real{EXT[kind]}").write_bytes(b"old")
    os.symlink(f"folder/real{EXT[kind]}", place / f"link{EXT[kind]}")
    long_name = "n" * (251 - len(EXT[kind])) + EXT[kind]  # 251 bytes: legal, but not with .data
    for output, pattern in ((f"pipe{EXT[kind]}", r"is a FIFO, written through: no external data"),
                            ("-", r"-: is written through as a stream: no external data"),
                            (f"link{EXT[kind]}", r"is a symlink into .*/folder, so its external data"),
                            (long_name, r"its external data file \(\+\.data\) would be 256 bytes long")):
        before = snapshot(place)
        result = run(command_args(command, output, "--external-data-threshold", "1"), place, user, fork=True)
        assert_refused(result, pattern)
        assert snapshot(place) == before


def test_read_only_folder(place, user, request):
    """Refused before the work where the user cannot write there; root can, so there it is written."""
    (place / "ro").mkdir()
    os.chmod(place / "ro", 0o555)
    if user == "nobody":
        os.chown(place / "ro", NOBODY, NOBODY)
    before = snapshot(place)
    if user == "current" and os.geteuid() == 0:
        result = run(command_args("apply", "ro/x.mir"), place, user)
        assert result.code == 0, result.text
        assert_valid_file(place / "ro" / "x.mir", "mir")
        assert set(snapshot(place)) - set(before) == {"ro/x.mir", "ro/x.mir.data"}  # e.mir keeps its layout
    else:
        request.getfixturevalue("forbid_work")
        result = run(command_args("apply", "ro/x.mir"), place, user, fork=True)
        assert_refused(result, r"ro/x\.mir: cannot write to folder .*/ro: permission denied")
        assert snapshot(place) == before


@pytest.mark.parametrize("output", ["-", "stdout-link"])
def test_terminal_is_refused(place, user, forbid_work, output):
    os.symlink("/proc/self/fd/1", place / "stdout-link")
    before = snapshot(place)
    result = run(command_args("apply", output), place, user, tty=True)
    assert_refused(result, r"is a terminal; redirect it")
    assert snapshot(place) == before


def test_a_failed_write_is_a_user_error(place, user, monkeypatch):
    """The disk fills up after the check: one line, exit 2, the old file and no temporary file."""
    (place / "old.mir").write_bytes(b"old")
    os.chmod(place / "old.mir", 0o666)
    before = snapshot(place)

    def fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    for command in FORKABLE:  # the patch needs a fork (see the module docstring)
        output = "old" + EXT[COMMANDS[command][2]]
        result = run(command_args(command, output), place, user, fork=True)
        assert result.code == 2, result.text
        assert "Traceback" not in result.text
        last = result.err.splitlines()[-1]  # e.mir keeps its layout: the .data file may be the one written first
        assert re.fullmatch(rf"{ERROR}{re.escape(output)}: cannot write( \S+\.data)?: No space left on device",
                            last), last
        assert snapshot(place) == before


# --- written: a regular file's place, through a link, or through a stream ----------------------
@pytest.mark.parametrize("user,command", WRITERS)
def test_fifo_is_written_through(place, user, command):
    kind = COMMANDS[command][2]
    fifo = place / f"pipe{EXT[kind]}"
    os.mkfifo(fifo)
    os.chmod(fifo, 0o666)
    before = snapshot(place)
    result = run(command_args(command, fifo.name), place, user, fifo=fifo)
    assert result.code == 0, result.text
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert_valid(result.fifo_bytes, kind)
    assert snapshot(place) == before


@pytest.mark.parametrize("user,command", WRITERS)
def test_stdout_dash_is_written_through(place, user, command):
    kind = COMMANDS[command][2]
    before = snapshot(place)
    result = run(command_args(command, "-"), place, user)
    assert result.code == 0, result.text
    assert_valid(result.out, kind)
    assert "wrote -" in result.err  # the report goes to stderr, the file alone to stdout
    assert snapshot(place) == before


def test_stdout_by_a_descriptor_name_is_written_through(place, user):
    """A link to /proc/self/fd/1 (as /dev/stdout is) is written through, never replaced."""
    os.symlink("/proc/self/fd/1", place / "stdout-link")
    before = snapshot(place)
    result = run(command_args("lower", "stdout-link", "--force"), place, user)
    assert result.code == 0, result.text
    assert_valid(result.out, "onnx")
    assert os.readlink(place / "stdout-link") == "/proc/self/fd/1"
    assert snapshot(place) == before


def test_character_device_is_written_through(place, user):
    """A node with /dev/null's numbers in a temporary folder (root only): it stays a device."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    rdev = os.stat("/dev/null").st_rdev
    node = place / "null.mir"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, rdev)
        os.chmod(node, 0o666)
        with open(node, "wb") as f:
            f.write(b"")
    except PermissionError as exc:
        pytest.skip(f"device nodes cannot be made or opened here (no CAP_MKNOD, or a nodev mount): {exc}")
    before = snapshot(place)
    result = run(command_args("apply", node.name), place, user)
    assert result.code == 0, result.text
    assert result.out.decode().splitlines()[-1] == f"wrote {node.name}"
    info = os.lstat(node)
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == rdev
    assert snapshot(place) == before


@pytest.mark.parametrize("user,command", WRITERS)
def test_symlink_output_stays_a_link(place, user, command):
    kind = COMMANDS[command][2]
    real, link = place / "folder" / f"real{EXT[kind]}", place / f"link{EXT[kind]}"
    real.write_bytes(b"old bytes")
    os.chmod(real, 0o666)
    os.symlink(f"folder/{real.name}", link)
    before = snapshot(place)
    result = run(command_args(command, link.name), place, user)
    assert result.code == 0, result.text
    assert os.readlink(link) == f"folder/{real.name}"
    assert_valid_file(real, kind)
    assert changed(before, snapshot(place)) == {f"folder/{real.name}"}


@pytest.mark.parametrize("command", ["lower", "import"])
def test_symlink_with_external_data_in_the_same_folder(place, user, command):
    """Its data goes next to the target, named after it, where loading through the link finds it."""
    kind = COMMANDS[command][2]
    link = place / f"link{EXT[kind]}"
    os.symlink(f"real{EXT[kind]}", link)
    result = run(command_args(command, link.name, "--external-data-threshold", "1"), place, user)
    assert result.code == 0, result.text
    assert link.is_symlink() and (place / f"real{EXT[kind]}.data").is_file()
    assert not (place / f"link{EXT[kind]}.data").exists()
    assert_valid_file(link, kind)


@pytest.mark.parametrize("command", ["apply", "lower"])
def test_dangling_symlink_gets_its_target(place, user, command):
    kind = COMMANDS[command][2]
    link = place / f"dangling{EXT[kind]}"
    os.symlink(f"folder/new{EXT[kind]}", link)
    result = run(command_args(command, link.name), place, user)
    assert result.code == 0, result.text
    assert os.readlink(link) == f"folder/new{EXT[kind]}"
    assert_valid_file(place / "folder" / f"new{EXT[kind]}", kind)


@pytest.mark.parametrize("user,command", WRITERS)
def test_longest_legal_name(place, user, command):
    """A 255-byte name works (the temporary name does not grow with it); with external data,
    a 250-byte one (+ .data = 255)."""
    kind = COMMANDS[command][2]
    names = ["n" * (255 - len(EXT[kind])) + EXT[kind]]
    extra = []
    if command != "apply":
        names, extra = ["d" * (250 - len(EXT[kind])) + EXT[kind]], ["--external-data-threshold", "1"]
    before = set(snapshot(place))
    result = run(command_args(command, names[0], *extra), place, user)
    assert result.code == 0, result.text
    assert_valid_file(place / names[0], kind)
    expected = {names[0]} | ({names[0] + ".data"} if extra else set())
    assert set(snapshot(place)) - before == expected


@pytest.mark.parametrize("user,command", WRITERS)
def test_other_format_name_with_force(place, user, command):
    kind = COMMANDS[command][2]
    output = f"x{OTHER[kind]}"
    result = run(command_args(command, output, "--force"), place, user)
    assert result.code == 0, result.text
    assert_valid_file(place / output, kind)


def test_library_savers_keep_a_symlink(sources, tmp_path):
    from maseir.lowering.onnx import save_onnx

    graph = maseir.load(sources / "e.mir")
    for name, save in (("m.mir", maseir.save), ("m.onnx", save_onnx)):
        os.symlink(f"real-{name}", tmp_path / name)
        save(graph, tmp_path / name)
        assert (tmp_path / name).is_symlink() and (tmp_path / f"real-{name}").is_file()
    assert maseir.load(tmp_path / "m.mir") == graph
    onnx.checker.check_model(str(tmp_path / "m.onnx"), full_check=True)
