"""Errors a user can cause. The CLI prints these as one line and exits 2."""


class MaseIRError(Exception):
    """Base of every error caused by user input (files, names, text)."""


class ArgumentError(MaseIRError, TypeError):
    """A public function got an argument of the wrong kind (also a TypeError, as Python code expects)."""


class FileFormatError(MaseIRError):
    """A file is missing, not a .mir, truncated, corrupt, or from a newer major version."""


class ChecksumError(FileFormatError):
    """A tensor's bytes do not match the sha256 recorded for it."""


class UnsupportedOpError(MaseIRError):
    """The frontend met an op the registry does not hold."""


class ModelLoadError(MaseIRError):
    """A model name or folder could not be turned into a model."""


class GraphError(MaseIRError):
    """A graph is malformed (raised by operations that need a valid graph)."""


class OutputError(MaseIRError, OSError):
    """An output cannot be written where it was asked for: a directory, a missing or
    unwritable folder, a name too long, a block device, an input of the command, a name of
    another format. Also an OSError, which is what a failed write raised before."""


class InputError(MaseIRError, ValueError):
    """A lowered graph was called with an input that does not fit the graph's input type (rank, dtype,
    a fixed size, or a symbolic size that differs between inputs). Also a ValueError."""
