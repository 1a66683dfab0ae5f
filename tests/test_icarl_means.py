"""iCaRL's nearest-mean classifier on inputs that are not mirror-symmetric.

Avalanche's ICaRL averages the features of each class's exemplars flipped left to right into the class
mean. On a stream whose two classes are each other's mirror image (bright left half against bright right
half) both means then become nearly the same vector, and which one is nearest hangs on noise;
``ExemplarMeansPlugin`` uses the exemplars as stored and keeps them apart.
"""

from __future__ import annotations

import pytest
import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset as tensor_dataset
from avalanche.training import ICaRL, Naive
from torch import nn

from avalanche_ext.functional.ncm import exemplar_mean
from avalanche_ext.plugins import ExemplarMeansPlugin
from avalanche_ext.plugins.icarl_means import icarl_memory_plugin


def _mirrored_stream():
    g = torch.Generator().manual_seed(0)

    def images(n, label):
        x = 0.1 * torch.rand(n, 1, 4, 4, generator=g)
        if label == 0:
            x[..., :2] += 1.0  # bright left half
        else:
            x[..., 2:] += 1.0  # bright right half: class 0 mirrored
        return x

    x = torch.cat([images(40, 0), images(40, 1)])
    y = torch.tensor([0] * 40 + [1] * 40)
    return nc_benchmark(tensor_dataset(x, y), tensor_dataset(x, y), n_experiences=1, task_labels=False,
                        fixed_class_order=[0, 1])


def _icarl(plugins):
    torch.manual_seed(0)
    features = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU())
    classifier = nn.Linear(8, 2)
    params = list(features.parameters()) + list(classifier.parameters())
    return ICaRL(feature_extractor=features, classifier=classifier, optimizer=torch.optim.SGD(params, lr=0.0),
                 memory_size=20, buffer_transform=None, fixed_memory=True, train_mb_size=16, train_epochs=1,
                 plugins=plugins, evaluator=None)


def _accuracy(strategy, stream) -> float:
    x, y = _tensors(stream.test_stream[0].dataset)
    strategy.model.eval()
    with torch.no_grad():
        return (strategy.model(x).argmax(1) == y).float().mean().item()


def _tensors(dataset):
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([it[0] for it in items]), torch.tensor([int(it[1]) for it in items])


def test_mirrored_exemplars_merge_the_class_means_and_the_plugin_keeps_them_apart():
    stream = _mirrored_stream()
    avalanche, ours = _icarl([]), _icarl([ExemplarMeansPlugin()])
    for strategy in (avalanche, ours):
        strategy.train(stream.train_stream[0])
        strategy.eval(stream.test_stream)
    cosine = {}
    for name, strategy in (("avalanche", avalanche), ("ours", ours)):
        means = icarl_memory_plugin(strategy).class_means
        cosine[name] = torch.dot(means[0], means[1]).item()  # both unit vectors
    assert cosine["avalanche"] > 0.99 and cosine["ours"] < 0.9, cosine
    assert _accuracy(ours, stream) == 1.0
    # the means are those of the exemplars as stored
    icarl = icarl_memory_plugin(ours)
    for samples, labels in zip(icarl.x_memory, icarl.y_memory):
        expected = exemplar_mean(ours.model.feature_extractor(samples))
        assert torch.allclose(icarl.class_means[labels[0]], expected)


def test_the_plugin_refuses_a_strategy_that_is_not_icarl():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), train_mb_size=16,
                     plugins=[ExemplarMeansPlugin()], evaluator=None)
    with pytest.raises(TypeError, match="needs Avalanche's ICaRL strategy"):
        strategy.train(_mirrored_stream().train_stream[0])


def test_exemplar_mean_is_the_unit_mean_of_unit_rows_and_refuses_an_empty_set():
    features = torch.tensor([[3.0, 0.0], [0.0, 0.5]])
    assert torch.allclose(exemplar_mean(features), torch.tensor([1.0, 1.0]) / 2 ** 0.5)
    with pytest.raises(ValueError, match="non-empty"):
        exemplar_mean(torch.zeros(0, 2))
