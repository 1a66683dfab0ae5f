"""BufferRehearsalPlugin: store the experience first, then train one pass over the whole buffer."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from avalanche_ext.plugins import BufferRehearsalPlugin
from avalanche_ext.storage import ExStreamBuffer
from tiny_streams import BatchLabels, tiny_naive, two_class_stream


def _buffer_labels(buffer) -> Counter:
    ds = buffer.buffer
    return Counter(int(ds[i][1]) for i in range(len(ds)))


@pytest.mark.parametrize("kind", ["exstream", "reservoir", "class_balanced"])
def test_each_experience_trains_one_pass_over_exactly_the_buffer(kind):
    from avalanche.training.storage_policy import ClassBalancedBuffer, ReservoirSamplingBuffer

    torch.manual_seed(0)
    buffer = {"exstream": lambda: ExStreamBuffer(12, per_class=2),
              "reservoir": lambda: ReservoirSamplingBuffer(12),
              "class_balanced": lambda: ClassBalancedBuffer(12, adaptive_size=False, total_num_classes=6)}[kind]()
    spy = BatchLabels()
    strategy = tiny_naive([BufferRehearsalPlugin(buffer), spy])
    for exp in two_class_stream().train_stream:
        strategy.train(exp)
        # the new samples went into the buffer before training, and training saw the buffer only, once
        assert len(spy.labels) == len(buffer.buffer) <= 12
        assert Counter(spy.labels) == _buffer_labels(buffer)
    assert set(spy.labels) & {0, 1, 2, 3}  # old classes rehearsed in the last experience


def test_every_sample_is_inserted_once_even_with_several_epochs():
    buffer = ExStreamBuffer(12, per_class=2)
    spy = BatchLabels()
    strategy = tiny_naive([BufferRehearsalPlugin(buffer), spy], train_epochs=3)
    for exp in two_class_stream().train_stream:
        strategy.train(exp)
        assert len(spy.labels) == 3 * len(buffer.buffer)
    assert {k[1]: v for k, v in buffer.counts().items()} == {c: 15 for c in range(6)}


def test_state_round_trip_of_an_exstream_buffer():
    buffer = ExStreamBuffer(12, per_class=2)
    plugin = BufferRehearsalPlugin(buffer)
    strategy = tiny_naive([plugin, BatchLabels()])
    strategy.train(two_class_stream().train_stream[0])
    other = BufferRehearsalPlugin(ExStreamBuffer(12, per_class=2))
    other.load_state_dict(plugin.state_dict())
    xa, ya, _, ca = buffer.tensors()
    xb, yb, _, cb = other.storage_policy.tensors()
    assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ca, cb)


def test_bad_inputs_fail_at_construction():
    with pytest.raises(ValueError, match="ExemplarsBuffer"):
        BufferRehearsalPlugin([1, 2, 3])
    latent = ExStreamBuffer(4, per_class=2, feature_extractor=torch.nn.Linear(6, 3))
    with pytest.raises(ValueError, match="ExStreamPlugin"):
        BufferRehearsalPlugin(latent)
