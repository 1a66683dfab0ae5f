"""Synaptic Intelligence that works on the CPU.

Avalanche 0.6.0's :class:`~avalanche.training.plugins.SynapticIntelligencePlugin` snapshots the
weights with ``param.detach().cpu().flatten()``. On a GPU ``.cpu()`` copies; on the CPU it does
not, and ``flatten()`` of a contiguous parameter is a view, so the snapshots are the live
weights: the per-step displacement is always zero, every importance is zero, the anchor of the
penalty follows the weights and SI trains exactly like ``Naive``. This subclass keeps Avalanche's
algorithm (importances, damping, clipping, penalty) and only makes the snapshots copies.
"""

from __future__ import annotations

from avalanche.training.plugins import SynapticIntelligencePlugin


class SafeSynapticIntelligencePlugin(SynapticIntelligencePlugin):
    """Avalanche's SI plugin with weight snapshots that are copies, not views of the parameters.

    Same arguments as Avalanche's plugin (``si_lambda``, ``eps``, ``excluded_parameters``,
    ``device``). Note that Avalanche clips every importance to at most 0.001, so useful values of
    ``si_lambda`` are large (thousands and more).
    """

    def __init__(self, si_lambda, eps: float = 0.0000001, excluded_parameters=None, device="as_strategy"):
        lambdas = si_lambda if isinstance(si_lambda, (list, tuple)) else [si_lambda]
        if any(float(lam) < 0 for lam in lambdas):
            raise ValueError(f"si_lambda must be >= 0, got {si_lambda}")
        if eps <= 0:
            raise ValueError(f"eps (the damping term) must be > 0, got {eps}")
        super().__init__(si_lambda, eps=eps, excluded_parameters=excluded_parameters, device=device)

    @staticmethod
    def _own_copies(params) -> None:
        for value in params.values():
            value.data = value.data.clone()

    def before_training_exp(self, strategy, **kwargs):
        super().before_training_exp(strategy, **kwargs)
        self._own_copies(self.ewc_data[0])  # the anchor of the penalty: the weights at this moment

    def before_training_iteration(self, strategy, **kwargs):
        super().before_training_iteration(strategy, **kwargs)
        self._own_copies(self.syn_data["old_theta"])  # the weights before this step's update
