"""``python -m maseir.frontends.onnx > spec/onnx-import.md``: the importer's table of handlers."""

from .handlers import markdown

print(markdown(), end="")
