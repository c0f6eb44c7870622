"""Helpers for the output-path tests: the input files the writing commands read, and a
snapshot of a folder to prove what a command changed."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import torch

import maseir

COMMANDS = {
    "export": (["export", "bert", "--random-init"], None, "mir"),
    "apply": (["apply", "-e", "remove dropout", "e.mir"], "e.mir", "mir"),
    "lower": (["lower", "e.mir", "--to", "onnx"], "e.mir", "onnx"),
    "import": (["import", "mlp.onnx"], "mlp.onnx", "mir"),
}
"""command -> (its arguments before -o, the file it reads (None: a model folder), what it writes)."""
EXT = {"mir": ".mir", "onnx": ".onnx"}


def make_sources(folder: Path) -> Path:
    """Write the inputs into ``folder``: an MLP as .mir inline (mlp.mir), with external data
    (e.mir, e.mir.data) and as ONNX (mlp.onnx), a config-only tiny BERT folder (bert/) and a
    text file (notes.txt)."""
    import transformers
    from maseir.lowering.onnx import save_onnx

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    graph = maseir.export(mlp, (torch.randn(2, 4),))
    maseir.save(graph, folder / "mlp.mir")
    maseir.save(graph, folder / "e.mir", external_data_threshold=1)
    save_onnx(graph, folder / "mlp.onnx")
    transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                            vocab_size=100, max_position_embeddings=64).save_pretrained(folder / "bert")
    (folder / "notes.txt").write_text("not a model\n")
    return folder


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder`` by relative path: symlinks by target, regular files by
    mtime and sha256, other kinds (folders, FIFOs, devices, sockets) by kind and device number."""
    entries = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                entry = ("link", os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                entry = ("file", info.st_mtime_ns, hashlib.sha256(Path(path).read_bytes()).hexdigest())
            else:
                entry = (stat.S_IFMT(info.st_mode), info.st_rdev)
            entries[os.path.relpath(path, folder)] = entry
    return entries


def changed(before: dict, after: dict) -> set[str]:
    """The entries added, removed or changed between two snapshots."""
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
