"""Parameter and multiply-add counts, against the formula and against PyTorch's own count."""

from __future__ import annotations

import pytest
import torch

from convfilter import UsageError, count_parameters, load_kernel
from convfilter.report import describe_layer, layer_counts, multiply_adds


@pytest.mark.parametrize(
    ("cin", "cout", "k", "groups", "bias"),
    [(3, 3, 3, 1, False), (3, 3, 3, 3, False), (64, 128, 3, 4, False), (64, 128, (3, 5), 64, True),
     (3, 1, 1, 1, True), (8, 8, (7, 1), 8, False), (12, 6, 2, 6, True)],
)  # fmt: skip
def test_count_matches_torch(cin, cout, k, groups, bias):
    layer = torch.nn.Conv2d(cin, cout, k, groups=groups, bias=bias)
    assert count_parameters(cin, cout, k, groups=groups, bias=bias) == sum(p.numel() for p in layer.parameters())


@pytest.mark.parametrize("channels", [1, 3, 4, 32])
def test_in_equals_out_equals_groups_is_depthwise(channels):
    # each group sees one input channel: C · 1 · kh · kw, 1/C of the dense count
    assert count_parameters(channels, channels, 3, groups=channels) == channels * 9
    assert count_parameters(channels, channels, 3, groups=1) == channels * channels * 9


def test_groups_cut_parameters_by_one_over_g():
    dense = count_parameters(64, 128, 3)
    for g in (1, 2, 4, 8, 16, 32, 64):
        assert count_parameters(64, 128, 3, groups=g) * g == dense


def test_groups_must_divide_both_counts():
    with pytest.raises(
        UsageError, match=r"groups=3 must divide both the 64 input and 128 output channels; try one of 1, 2, 4"
    ):
        count_parameters(64, 128, 3, groups=3)
    with pytest.raises(UsageError, match=r"channel counts must be at least 1"):
        count_parameters(0, 3, 3)


def test_multiply_adds_of_the_classic_example():
    assert multiply_adds(3, 3, 3, 1, 451 * 300) == 451 * 300 * 3 * 3 * 9


def test_layer_counts_json_fields():
    counts = layer_counts(64, 128, 3, groups=4, size=(10, 20))
    assert counts["weights"] == 18432 and counts["parameters"] == 18432
    assert counts["dense_weights"] == 73728 and counts["depthwise_weights"] == 64 * 2 * 9
    assert counts["valid_groups"] == [1, 2, 4, 8, 16, 32, 64]
    assert counts["multiply_adds"] == 10 * 20 * 128 * 16 * 9


def test_report_text_of_the_classic_example():
    text = describe_layer(load_kernel("edge").layer(3), (451, 300))
    assert text.splitlines() == [
        "edge: dense conv 3→3 channels, 3×3 kernel, groups=1, padding=zeros, stride 1",
        "      parameters: 81 weights + 0 bias = 81  (depthwise would be 27; groups=g gives 81/g for g in 1, 3)",
        "      cost: 10.96 M multiply-adds for 451×300",
    ]


def test_report_of_depthwise_names_the_dense_cost():
    text = describe_layer(load_kernel("edge").with_options(mix=3).layer(3), (10, 10))
    assert "depthwise conv 3→3 channels" in text
    assert "parameters: 27 weights + 0 bias = 27  (dense would be 81;" in text
