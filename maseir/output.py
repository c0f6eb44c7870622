"""Where maseir writes: an output path checked before any work starts, then written safely.

Every command that writes a file (export, apply, import, lower) and the library's savers
(``maseir.io.save``, ``maseir.lowering.onnx.save_onnx``) follow these rules:

- **A new name or an existing regular file** is replaced atomically: the bytes go to a
  temporary file in the same folder (``.maseir-XXXXXXXX.tmp``: short and independent of the
  output's name, so any legal name works), are fsynced, and the temporary file is renamed over
  the name. A reader never sees half a file; a failure leaves the old file and no temporary file.
- **A symbolic link stays a link**: the file it points at is replaced as above (created, for a
  dangling link). A side file (``<target>.data``, external data) goes next to the target, so a
  link into another folder cannot take one: loading through the link would look for it next
  to the link.
- **A FIFO, a character device, ``-``** (standard output; on the command line only) **and the
  name of an open descriptor** (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``) are
  written through: opened (never created, truncated or renamed) and written. They take no side
  file, and a terminal is refused (a model is binary).
- **Everything else is refused** with an :class:`~maseir.errors.OutputError`, one line: a
  directory, a block device, a socket, a missing folder, a folder where no file can be created
  (found by creating and removing a temporary file there, because root passes every permission
  check: this also catches /proc, /sys and read-only mounts), a name longer than the file system
  allows (NAME_MAX), a file the command reads or its external data, and, unless forced, a name
  whose extension says it is another format (a .mir named ``x.onnx``).

``check_output`` applies the rules before the work; the writers apply them again when they
write, since a path may change in between.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import OutputError

TEMP_PREFIX = ".maseir-"
TEMP_SUFFIX = ".tmp"
"""Temporary files are ``TEMP_PREFIX + 8 random characters + TEMP_SUFFIX`` (20 bytes)."""
SIDE_SUFFIX = ".data"
"""A side file (external tensor data) is named after its file: ``m.mir`` -> ``m.mir.data``."""

FORMATS = {"mir": (".mir", "a .mir file"), "onnx": (".onnx", "an ONNX model")}
"""What a command writes (``check_output``'s ``kind``): its extension, and its name in messages."""
EXTENSIONS = {".mir": "a .mir file", ".onnx": "an ONNX model", ".pass": "a pipeline",
              ".data": "external tensor data"}
"""Extensions of the formats maseir reads and writes: writing another format to such a name is refused."""

_DEFAULT_NAME_MAX = 255
_FD_NAME = re.compile(r"/dev/std(?P<std>in|out|err)|/dev/fd/(?P<fd>\d+)"
                      r"|/proc/(?P<pid>self|thread-self|\d+)/fd/(?P<pfd>\d+)")
_STD_FDS = {"in": 0, "out": 1, "err": 2}


@dataclass(frozen=True)
class Output:
    """A place to write one file, as :func:`check_output` found it.

    ``name`` is the path as given (used in messages; ``str(output)`` is the name). ``path`` is
    what gets written: for an atomic replace the absolute, symlink-resolved file; for a stream
    the FIFO or device that is opened; None when ``fd``, an open descriptor of this process
    (1 for ``-``), is written instead. ``stream`` is True when the bytes are written through
    rather than renamed into place; ``shares_stdout`` when they go to this process's standard
    output, so that commands print their reports to standard error instead.
    """

    name: str
    path: Path | None
    fd: int | None = None
    stream: bool = False
    shares_stdout: bool = False
    no_side_file: str | None = None
    """Why no side file can go with this output (None: one can)."""

    def __str__(self) -> str:
        return self.name

    @property
    def side_name(self) -> str:
        """The name of the side file (external data) next to ``path``, as a file refers to it.

        Raises OutputError where no side file can be written (a stream, a link into another folder)."""
        if self.no_side_file:
            raise OutputError(f"{self.name}: {self.no_side_file}")
        return self.path.name + SIDE_SUFFIX

    @property
    def side_path(self) -> Path:
        """The side file's path (see ``side_name``)."""
        return self.path.with_name(self.side_name)


def check_output(output: str | os.PathLike, *inputs: str | os.PathLike, kind: str | None = None,
                 force: bool = False, side_file: bool = False, dash_is_stdout: bool = True) -> Output:
    """Where ``output`` is written, checked before a command does its work.

    ``inputs`` are the files the command reads: neither they nor their ``.data`` files may be
    the output. ``kind`` ("mir" or "onnx", see FORMATS) refuses a name whose extension belongs
    to another format unless ``force``. ``side_file``: the command will also write external data
    next to the output, so that name must work too. ``dash_is_stdout``: ``-`` means standard
    output (the command-line convention; library calls pass False).

    Returns an Output; raises OutputError (one line, naming the output) for every refusal in
    this module's docstring. Creates nothing: the probe file it makes is removed at once.
    """
    name = os.fspath(output)
    target = locate(name, dash_is_stdout=dash_is_stdout)
    _refuse_inputs(target, inputs, side_file)
    if kind is not None and not force:
        _refuse_other_format(name, kind)
    _check_writable(target, side_file)
    return target


def output_target(output: Output | str | os.PathLike) -> Output:
    """``output`` if it is already an Output, else the Output of a path (a library call:
    ``-`` is a file name there). Raises OutputError as check_output does."""
    if isinstance(output, Output):
        return output
    return check_output(output, dash_is_stdout=False)


def locate(name: str, *, dash_is_stdout: bool = False) -> Output:
    """What kind of place ``name`` is (a file to replace, a stream, a descriptor); raises
    OutputError for what can never be written (a directory, a block device, a socket).
    Checks nothing about permissions (see check_output)."""
    if not name:
        raise OutputError("the output file name is empty")
    if "\0" in name:
        raise OutputError(f"{name!r}: a file name cannot contain a NUL character")
    if dash_is_stdout and name == "-":
        return _descriptor_output(name, 1)
    fd = _descriptor_of(name)
    if fd is not None:
        return _descriptor_output(name, fd)
    try:
        info = os.stat(name)  # follows symlinks: what the bytes would reach
    except NotADirectoryError:
        raise OutputError(f"{name}: {_first_non_folder(name)} is not a folder") from None
    except OSError as exc:
        if not isinstance(exc, FileNotFoundError) and exc.errno != errno.ENAMETOOLONG:
            raise OutputError(f"{name}: cannot write there: {exc.strerror or exc}") from None
        info = None  # a new name (one too long is refused by check_output, which gives the limit)
    if info is None or stat.S_ISREG(info.st_mode):
        if info is None and name.endswith(os.sep):
            raise OutputError(f"{name}: names a folder; give a file name")
        path = Path(os.path.realpath(name))
        link_folder = Path(os.path.realpath(os.path.dirname(os.path.abspath(name))))
        why = None
        if link_folder != path.parent:
            why = (f"is a symlink into {path.parent}, so its external data would be written there but "
                   f"looked for next to the link; write to {path} instead")
        return Output(name, path, no_side_file=why)
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise OutputError(f"{name}: is a directory; give a file name")
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        what = "a FIFO" if stat.S_ISFIFO(mode) else "a character device"
        return Output(name, Path(os.path.abspath(name)), stream=True, shares_stdout=_is_stdout(info),
                      no_side_file=f"is {what}, written through: no external data file can go with it; "
                                   "write to a regular file")
    what = "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "a special file"
    raise OutputError(f"{name}: is {what}; maseir writes only regular files, FIFOs and character devices")


def write_output(output: Output | str | os.PathLike, chunks, side_chunks=None) -> int:
    """Write ``chunks`` (bytes-like pieces, in order) to ``output`` by the rules above and,
    when ``side_chunks`` is non-empty, those to its side file ``output.side_path`` first (both
    staged before either is renamed into place). Returns the bytes written to ``output``.
    Raises OutputError (an OSError too), leaving no temporary file."""
    target = output_target(output)
    if target.stream:
        if side_chunks:
            target.side_name  # noqa: B018  (raises: a stream takes no side file)
        return _write_through(target, chunks)
    files = [(target.side_path, side_chunks)] if side_chunks else []
    replace_files(files + [(target.path, chunks)], name=target.name)
    return sum(_nbytes(c) for c in chunks)


def replace_files(files: list[tuple[str | os.PathLike, list]], *, name: str | None = None) -> None:
    """Replace each ``(path, chunks)`` atomically: every file is staged (written and fsynced to a
    temporary name in its folder) before any is renamed over its path, in the order given, so a
    failed write leaves the old files. A path that exists and is not a regular file (a symlink,
    a FIFO, a device, a directory) is refused, never swapped for a file.

    Raises OutputError (one line, starting with ``name``, default the path), removing every
    temporary file it made."""
    staged: list[tuple[str, Path]] = []
    current = None
    try:
        for path, chunks in files:
            current = Path(path)
            _refuse_non_regular(current, name)
            staged.append((_stage(current, chunks), current))
        for tmp, final in staged:
            current = final
            _refuse_non_regular(final, name)
            os.replace(tmp, final)
    except OutputError:
        raise
    except OSError as exc:
        label = name or str(current)
        where = "" if name is None or Path(os.path.realpath(name)) == current else f" {current}"
        raise OutputError(f"{label}: cannot write{where}: {exc.strerror or exc}") from None
    finally:
        for tmp, _ in staged:
            try:
                os.unlink(tmp)
            except FileNotFoundError:  # renamed into place
                pass


def _stage(path: Path, chunks) -> str:
    """Write ``chunks`` to a fsynced temporary file next to ``path``; returns its name."""
    import tempfile  # here, not at the top: the CLI's start-up time

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a saved file follows the umask
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _write_through(target: Output, chunks) -> int:
    """Write ``chunks`` to a FIFO, a character device or an open descriptor."""
    close = target.fd is None
    try:
        if close:  # no O_CREAT, no O_TRUNC: if it is gone, nothing is created in its place
            fd = os.open(target.path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        else:
            fd = target.fd
            sys.stdout.flush()
        try:
            mode = os.fstat(fd).st_mode
            if close and not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
                raise OutputError(f"{target.name}: is no longer a FIFO or a character device; not written")
            if os.isatty(fd):
                raise OutputError(f"{target.name}: is a terminal; redirect it to a file or a pipe "
                                  "(the output is binary)")
            total = 0
            with open(fd, "wb", closefd=False) as f:  # buffered: retries short writes to a pipe
                for chunk in chunks:
                    f.write(chunk)
                    total += _nbytes(chunk)
            return total
        finally:
            if close:
                os.close(fd)
    except BrokenPipeError:
        raise OutputError(f"{target.name}: the reader closed the pipe before the whole file was written") from None
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"{target.name}: cannot write: {exc.strerror or exc}") from None


def _descriptor_of(name: str) -> int | None:
    """The descriptor number when ``name`` (or a symlink chain from it) names one of this
    process's open descriptors (/dev/stdout, /dev/fd/N, /proc/self/fd/N), else None."""
    path = os.path.abspath(name)
    for _ in range(40):  # the kernel's own limit on a chain of symlinks
        match = _FD_NAME.fullmatch(path)
        if match:
            if match["std"]:
                return _STD_FDS[match["std"]]
            if match["fd"]:
                return int(match["fd"])
            if match["pid"] in ("self", "thread-self") or int(match["pid"]) == os.getpid():
                return int(match["pfd"])
            return None
        try:
            link = os.readlink(path)
        except OSError:
            return None
        path = os.path.normpath(os.path.join(os.path.dirname(path), link))
    return None


def _descriptor_output(name: str, fd: int) -> Output:
    import fcntl

    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        info = os.fstat(fd)
    except OSError:
        raise OutputError(f"{name}: descriptor {fd} is not open") from None
    if flags & os.O_ACCMODE == os.O_RDONLY:
        raise OutputError(f"{name}: descriptor {fd} is open only for reading")
    if os.isatty(fd):
        raise OutputError(f"{name}: is a terminal; redirect it to a file or a pipe (the output is binary)")
    return Output(name, None, fd=fd, stream=True, shares_stdout=fd == 1 or _is_stdout(info),
                  no_side_file="is written through as a stream: no external data file can go with it; "
                               "write to a regular file")


def _is_stdout(info: os.stat_result) -> bool:
    try:
        return os.path.samestat(info, os.fstat(1))
    except OSError:
        return False


def _refuse_inputs(target: Output, inputs, side_file: bool) -> None:
    if target.path is None or not inputs:
        return
    protected = set()
    for given in map(os.fspath, inputs):
        protected |= {os.path.realpath(given), os.path.realpath(given + SIDE_SUFFIX)}
    written = [target.path] + ([target.side_path] if side_file and not target.no_side_file else [])
    if any(os.path.realpath(p) in protected for p in written):
        raise OutputError(f"{target.name}: the output must not be an input file or its data "
                          "(inputs are never modified)")


def _refuse_other_format(name: str, kind: str) -> None:
    ext, what = FORMATS[kind]
    suffix = os.path.splitext(name)[1].lower()
    if suffix in EXTENSIONS and suffix != ext:
        raise OutputError(f"{name}: this writes {what}, but a name ending {suffix} is for "
                          f"{EXTENSIONS[suffix]}; name it *{ext}, or give --force")


def side_file_problem(target: Output) -> str | None:
    """Why no side file (external data) can go with ``target``, or None when one can:
    a stream, a link into another folder, a side-file name the file system refuses."""
    try:
        _check_writable(target, side_file=True)
    except OutputError as exc:
        return str(exc)
    return None


def _check_writable(target: Output, side_file: bool) -> None:
    """Refuse, before the work, an output that cannot be written (see the module docstring)."""
    if target.stream:
        if side_file:
            target.side_name  # noqa: B018  (raises: a stream takes no side file)
        if target.path is not None:
            _check_stream(target)
        return
    name, path = target.name, target.path
    folder = path.parent
    if not folder.is_dir():
        shown = folder if os.path.islink(name) else (os.path.dirname(name) or ".")
        raise OutputError(f"{name}: folder {shown} does not exist")
    if side_file:
        target.side_name  # noqa: B018  (raises when no side file can be written next to it)
    limit = _name_max(folder)
    if len(os.fsencode(path.name)) > limit:
        raise OutputError(f"{name}: the file name is {len(os.fsencode(path.name))} bytes long; "
                          f"this file system allows {limit}")
    path_max = _path_max(folder)
    if len(os.fsencode(str(path))) >= path_max:
        raise OutputError(f"{name}: the path is {len(os.fsencode(str(path)))} bytes long; "
                          f"this system allows {path_max - 1}")
    if side_file:
        if len(os.fsencode(target.side_name)) > limit:
            raise OutputError(f"{name}: the name of its external data file (+{SIDE_SUFFIX}) would be "
                              f"{len(os.fsencode(target.side_name))} bytes long; this file system allows {limit}")
        _refuse_non_regular(target.side_path, name)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{name}: cannot write to folder {folder}: permission denied")
    import tempfile

    try:  # root passes os.access everywhere; /proc, /sys and read-only mounts need a real try
        fd, probe = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{name}: cannot create files in {folder}: {exc.strerror or exc}") from None


def _check_stream(target: Output) -> None:
    """A FIFO or a device named by path: writable, and not a terminal."""
    if not os.access(target.path, os.W_OK):
        raise OutputError(f"{target.name}: cannot write to it: permission denied")
    if not stat.S_ISCHR(os.stat(target.path).st_mode):
        return  # a FIFO: opening it waits for a reader, so it is opened only to write
    try:
        fd = os.open(target.path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise OutputError(f"{target.name}: cannot write to it: {exc.strerror or exc}") from None
    try:
        if os.isatty(fd):
            raise OutputError(f"{target.name}: is a terminal; redirect it to a file or a pipe "
                              "(the output is binary)")
    finally:
        os.close(fd)


def _refuse_non_regular(path: Path, name: str | None) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        what = ("a symlink" if stat.S_ISLNK(mode) else "a directory" if stat.S_ISDIR(mode)
                else "not a regular file")
        prefix = f"{name}: {path}" if name and Path(os.path.realpath(name)) != path else str(name or path)
        raise OutputError(f"{prefix}: is {what}; maseir replaces only regular files")


def _first_non_folder(name: str) -> str:
    for parent in reversed(Path(name).parents):
        if parent.exists() and not parent.is_dir():
            return str(parent)
    return os.path.dirname(name)


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return _DEFAULT_NAME_MAX


def _path_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 4096


def _nbytes(chunk) -> int:
    return memoryview(chunk).nbytes


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
