"""In-place ops (``x += y``, ResNet's residual add): exported as their out-of-place op where that
computes the same; refused, by name and scope, where the update would reach an input or a view."""

import pytest
import torch
from torch import nn

import maseir
from maseir.errors import UnsupportedOpError


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Linear(4, 4)

    def forward(self, x):
        h = self.conv(x)
        h += x  # in place on an intermediate
        h.mul_(2)
        return torch.relu(h)


class UpdatesItsInput(nn.Module):
    def forward(self, x):
        x.add_(1)
        return x * 2


class UpdatesAView(nn.Module):
    def forward(self, x):
        h = x * 2
        flat = h.view(-1)
        h.add_(1)  # flat sees this too
        return flat


def test_in_place_update_of_an_intermediate_is_the_out_of_place_op():
    torch.manual_seed(0)
    model = Residual().eval()
    graph = maseir.export(model, (torch.randn(2, 4),))
    assert [n.op for n in graph.nodes] == ["linear", "add", "mul", "relu"]
    x = torch.randn(3, 4)
    with torch.no_grad():
        assert torch.equal(maseir.to_torch(graph)(x), model(x.clone()))


@pytest.mark.parametrize("module,words", [(UpdatesItsInput(), "updates a graph input, parameter or buffer in place"),
                                          (UpdatesAView(), "a view of another")])
def test_in_place_update_that_would_reach_another_tensor_is_refused(module, words):
    with pytest.raises(UnsupportedOpError, match=words) as info:
        maseir.export(module, (torch.randn(2, 4),), dynamic_dims={})
    assert "add_" in str(info.value) and "<root>" in str(info.value)
