"""One-bit mask storage and predictive entropy: the shared maths of the mask and task-inference methods."""

from __future__ import annotations

import math

import pytest
import torch

from avalanche_ext.functional.bits import pack_bits, unpack_bits
from avalanche_ext.functional.entropy import entropy, normalized_entropy


@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (3, 5), (3, 5, 2, 2), (4, 3, 3, 3), (400, 64)])
def test_packed_masks_round_trip_with_one_bit_per_weight(shape):
    torch.manual_seed(0)
    mask = torch.rand(shape) > 0.5
    packed = pack_bits(mask)
    assert packed.dtype == torch.uint8 and packed.shape == (math.ceil(mask.numel() / 8),)
    assert torch.equal(unpack_bits(packed, shape), mask)
    assert torch.equal(unpack_bits(packed, shape, torch.float32), mask.float())


def test_bits_are_written_most_significant_first_and_any_nonzero_counts():
    assert pack_bits(torch.tensor([1, 0, 1, 0, 0, 0, 0, 0, 1])).tolist() == [160, 128]
    assert pack_bits(torch.tensor([0.0, 2.5, -1.0])).tolist() == [96]


def test_unpacking_into_the_wrong_shape_is_refused():
    packed = pack_bits(torch.ones(10, dtype=torch.bool))
    for shape in ((17,), (4, 5)):
        with pytest.raises(ValueError, match="cannot hold a mask"):
            unpack_bits(packed, shape)
    with pytest.raises(ValueError, match="uint8"):
        unpack_bits(packed.int(), (10,))


def test_entropy_is_log_n_for_uniform_and_zero_for_certain_predictions():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [50.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    h = entropy(logits)
    p = torch.softmax(logits[2], 0)
    torch.testing.assert_close(h, torch.tensor([math.log(4), 0.0, float(-(p * p.log()).sum())]))
    torch.testing.assert_close(normalized_entropy(logits), h / math.log(4))
    assert normalized_entropy(torch.zeros(3, 1)).tolist() == [0.0, 0.0, 0.0]
