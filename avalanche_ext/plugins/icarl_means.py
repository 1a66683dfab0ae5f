"""iCaRL's class means from the exemplars as stored, without Avalanche's mirrored copies.

Avalanche 0.6.0's ``ICaRL`` averages, for every class, the features of its exemplars *and* of the
same exemplars flipped left to right (``torch.flip(x, [3])`` on any 4-d input), as the original
iCaRL did for CIFAR's natural images. Digits and other inputs without a mirror symmetry change
class when flipped (a mirrored 3 is no 3), so the nearest-mean classifier then compares test
images with means half made of images no test image looks like. :class:`ExemplarMeansPlugin`
recomputes each mean from the stored exemplars alone (:func:`~avalanche_ext.functional.ncm.exemplar_mean`)
before every evaluation and hands them to the strategy's ``NCMClassifier``; training, herding and
the memory are Avalanche's, untouched.
"""

from __future__ import annotations

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.supervised.icarl import _ICaRLPlugin

from ..functional.ncm import exemplar_mean


def icarl_memory_plugin(strategy) -> _ICaRLPlugin:
    """The plugin that Avalanche's ``ICaRL`` adds to itself: it holds the exemplars (``x_memory``, ``y_memory``)
    and the class means.

    Raises:
        TypeError: ``strategy`` is not Avalanche's ICaRL.
    """
    for plugin in strategy.plugins:
        if isinstance(plugin, _ICaRLPlugin):
            return plugin
    raise TypeError(f"ExemplarMeansPlugin needs Avalanche's ICaRL strategy (avalanche.training.ICaRL), "
                    f"got {type(strategy).__name__}")


class ExemplarMeansPlugin(SupervisedPlugin):
    """Give ICaRL's nearest-mean classifier class means made from the unflipped exemplars only.

    Add it to ``ICaRL(plugins=[...])``. It changes no training step: before each evaluation it
    replaces the class means that Avalanche computed with flipped copies mixed in.
    """

    def before_training(self, strategy, **kwargs):
        icarl_memory_plugin(strategy)  # refuse a strategy that is not ICaRL before any training

    def before_eval(self, strategy, **kwargs):
        icarl = icarl_memory_plugin(strategy)
        if not icarl.x_memory:
            return
        model = strategy.model
        was_training = model.training
        model.eval()
        with torch.no_grad():
            for samples, labels in zip(icarl.x_memory, icarl.y_memory):
                features = model.feature_extractor(samples.to(strategy.device))
                icarl.class_means[labels[0]] = exemplar_mean(features)
        model.train(was_training)
        model.eval_classifier.replace_class_means_dict(icarl.class_means)
