"""The op registry: docs in sync, schemas sane, unknown ops refused by name and scope."""

from pathlib import Path

import pytest
import torch

import maseir
from maseir import ops
from maseir.errors import UnsupportedOpError

ROOT = Path(__file__).resolve().parents[1]


def test_ops_md_is_generated_from_the_registry():
    assert (ROOT / "spec" / "ops.md").read_text() == ops.markdown(), \
        "spec/ops.md is stale: regenerate it with python -m maseir.ops > spec/ops.md"


def test_ops_json_is_atens_schema_of_every_op():
    """The registry reads op schemas from spec/ops.json (no torch at start-up); it
    must be exactly what the installed torch says."""
    assert (ROOT / "spec" / "ops.json").read_text() == ops.schemas_json(), \
        "spec/ops.json is stale: regenerate it with python -m maseir.ops --schemas > spec/ops.json"


def test_every_op_has_a_doc_and_at_most_one_variadic_input():
    for op in ops.REGISTRY.values():
        assert op.doc
        assert sum(t.variadic for t in op.tensor_args) <= 1
        for name in (op.training_flag, *op.eval_overrides):
            if name:
                assert any(a.name == name for a in op.aten._schema.arguments)


def test_type_rule_keeps_symbolic_dims():
    x = maseir.TensorType("float32", ("batch", "seq", 8))
    w = maseir.TensorType("float32", (4, 8))
    (out,) = ops.infer_types(ops.get("linear"), [x, w], {})
    assert out.shape == ("batch", "seq", 4) and out.dtype == "float32"


def test_type_rule_reports_mismatch():
    x = maseir.TensorType("float32", ("batch", 3))
    w = maseir.TensorType("float32", (4, 8))
    with pytest.raises(ops.TypeRuleError):
        ops.infer_types(ops.get("linear"), [x, w], {})


class Cumprod(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = torch.nn.Linear(4, 4)

    def forward(self, x):
        return torch.cumprod(self.inner(x), dim=1)


def test_unknown_op_is_an_error_naming_op_and_scope():
    with pytest.raises(UnsupportedOpError) as info:
        maseir.export(Cumprod(), (torch.randn(2, 4),))
    assert "cumprod" in str(info.value) and "root" in str(info.value)


def test_type_rule_checks_dim_attributes_meta_kernels_skip():
    x = maseir.TensorType("float32", ("batch", 4))
    with pytest.raises(ops.TypeRuleError, match="dim=5 is out of range"):
        ops.infer_types(ops.get("softmax"), [x], {"dim": 5})
    (out,) = ops.infer_types(ops.get("softmax"), [x], {"dim": -1})
    assert out.shape == ("batch", 4)
    (out,) = ops.infer_types(ops.get("unsqueeze"), [x], {"dim": 2})
    assert out.shape == ("batch", 4, 1)
