"""Property tests: random MLP and CNN stacks survive export, lowering, save and load."""

import torch
from hypothesis import given
from torch import nn

import maseir
from models import SETTINGS, cnns, mlps


def _round_trip(model, feature_shape, tmp_path):
    graph = maseir.export(model, (torch.randn(2, *feature_shape),))
    assert maseir.check(graph) == []
    lowered = maseir.to_torch(graph)
    for batch in (1, 3, 7):
        x = torch.randn(batch, *feature_shape)
        with torch.no_grad():
            assert (lowered(x) - model(x)).abs().max() <= 1e-5
    first, second = tmp_path / "a.mir", tmp_path / "b.mir"
    maseir.save(graph, first)
    loaded = maseir.load(first)
    assert loaded == graph
    assert maseir.show(loaded) == maseir.show(graph)
    maseir.save(loaded, second)
    assert first.read_bytes() == second.read_bytes()
    return graph


@SETTINGS
@given(mlps())
def test_random_mlp_round_trips(tmp_path_factory, case):
    model, shape = case
    graph = _round_trip(model, shape, tmp_path_factory.mktemp("mlp"))
    assert graph.inputs[0].type.shape == ("batch", *shape)
    assert sum(n.op == "dropout" for n in graph.nodes) == sum(isinstance(m, nn.Dropout) for m in model)


@SETTINGS
@given(cnns())
def test_random_cnn_round_trips(tmp_path_factory, case):
    model, shape = case
    _round_trip(model, shape, tmp_path_factory.mktemp("cnn"))


def test_cnn_uses_the_listed_ops(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    graph = _round_trip(model, (3, 8, 8), tmp_path)
    assert [n.op for n in graph.nodes] == ["conv2d", "batch_norm", "relu", "max_pool2d",
                                           "adaptive_avg_pool2d", "flatten", "linear"]


def test_params_carry_names_and_trainability():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).eval()
    model[2].weight.requires_grad_(False)
    graph = maseir.export(model, (torch.randn(2, 3),))
    assert graph.params["0.weight"].trainable and not graph.params["2.weight"].trainable
    assert not graph.params["1.running_mean"].trainable
    lowered = maseir.to_torch(graph)
    params = dict(lowered.named_parameters())
    assert params["0.weight"].requires_grad and not params["2.weight"].requires_grad
    assert set(graph.params) <= set(params) | set(dict(lowered.named_buffers()))


def test_train_mode_makes_dropout_live():
    model = nn.Sequential(nn.Linear(8, 64), nn.Dropout(0.5), nn.Linear(64, 8)).eval()
    lowered = maseir.to_torch(maseir.export(model, (torch.randn(2, 8),)))
    x = torch.randn(4, 8)
    assert torch.equal(lowered(x), lowered(x))
    lowered.train()
    torch.manual_seed(1)
    a = lowered(x)
    b = lowered(x)
    assert not torch.equal(a, b)
    a.sum().backward()  # trains
    assert lowered.get_parameter("0.weight").grad is not None


def test_batch_norm_updates_running_stats_in_train_mode():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)).eval()
    lowered = maseir.to_torch(maseir.export(model, (torch.randn(2, 1, 4, 4),)))
    before = lowered.get_parameter("1.running_mean").detach().clone()
    lowered.train()
    lowered(torch.randn(8, 1, 4, 4) + 3)
    assert not torch.equal(before, lowered.get_parameter("1.running_mean"))


def test_multiple_outputs_and_positional_inputs():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(3, 4)

        def forward(self, x, y):
            return self.a(x), self.b(y) * 2.0

    model = TwoHeads().eval()
    graph = maseir.export(model, (torch.randn(2, 3), torch.randn(2, 3)))
    assert [v.name for v in graph.inputs] == ["x", "y"] and len(graph.outputs) == 2
    x, y = torch.randn(5, 3), torch.randn(5, 3)
    out = maseir.to_torch(graph)(x, y)
    assert isinstance(out, tuple) and all(torch.allclose(o, r) for o, r in zip(out, model(x, y)))
