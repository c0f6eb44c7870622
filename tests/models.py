"""Hypothesis strategies for random models: MLP and CNN stacks (module, feature shape).

Shared by the frontend, lowering, import and pass tests, so every property
runs over the same families.
"""

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from torch import nn

SETTINGS = settings(max_examples=10, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ACTIVATIONS = [nn.ReLU, nn.GELU, lambda: nn.GELU(approximate="tanh"), nn.Tanh, nn.Sigmoid, nn.SiLU,
               lambda: nn.LeakyReLU(0.2), nn.Hardtanh]


@st.composite
def mlps(draw, min_width: int = 1, min_linears: int = 1, layer_norm: bool = True):
    """Random eval-mode MLPs: linears (with or without bias) of widths min_width..16, an
    activation between each two, maybe a dropout and (with ``layer_norm``) a LayerNorm."""
    widths = draw(st.lists(st.integers(min_width, 16), min_size=min_linears + 1, max_size=5))
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b, bias=draw(st.booleans())))
        if i < len(widths) - 2:
            layers.append(draw(st.sampled_from(ACTIVATIONS))())
            if draw(st.booleans()):
                layers.append(nn.Dropout(draw(st.floats(0.05, 0.5))))
            if layer_norm and draw(st.booleans()):
                layers.append(nn.LayerNorm(b))
    torch.manual_seed(draw(st.integers(0, 2**16)))
    for layer in layers:
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    return nn.Sequential(*layers).eval(), (widths[0],)


@st.composite
def cnns(draw):
    channels = draw(st.lists(st.integers(1, 6), min_size=2, max_size=4))
    layers, size = [], 12
    for a, b in zip(channels, channels[1:]):
        k = draw(st.integers(1, min(3, size)))
        padding = draw(st.integers(0, k // 2))
        stride = draw(st.sampled_from([1, 1, 2])) if size >= 6 else 1
        layers.append(nn.Conv2d(a, b, k, padding=padding, stride=stride))
        size = (size + 2 * padding - k) // stride + 1
        if draw(st.booleans()):
            bn = nn.BatchNorm2d(b)
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            layers.append(bn)
        layers.append(draw(st.sampled_from(ACTIVATIONS))())
        pool = draw(st.sampled_from([None, "max", "avg"])) if size >= 4 else None
        if pool:
            layers.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
            size //= 2
    out = draw(st.sampled_from([1, 1, 2, 3]))
    layers += [nn.AdaptiveAvgPool2d(out), nn.Flatten(), nn.Linear(channels[-1] * out * out, draw(st.integers(1, 5)))]
    torch.manual_seed(draw(st.integers(0, 2**16)))
    for layer in layers:
        if hasattr(layer, "reset_parameters") and not isinstance(layer, nn.BatchNorm2d):
            layer.reset_parameters()
    return nn.Sequential(*layers).eval(), (channels[0], 12, 12)
