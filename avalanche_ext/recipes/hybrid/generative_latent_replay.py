"""Positive generative latent replay: GNR's generator and CWR* head, generated latents replayed with their labels."""

from avalanche_ext.registry import register
from avalanche_ext.recipes.hybrid.gnr import HPARAMS, PER_BENCHMARK_POSITIVE, build_generative


@register(
    name="generative_latent_replay",
    family="hybrid",
    paper="Graffieti, Maltoni, Pellegrini, Lomonaco, Generative Negative Replay for Continual Learning, Neural Networks 162, 2023, arXiv:2204.05842 (the positive-replay baseline)",
    scenarios=("class",),
    hparams=HPARAMS,
    per_benchmark=PER_BENCHMARK_POSITIVE,
    summary="CWR* head; VAE-generated latents replayed as ordinary labelled samples (GNR's positive control)",
)
def build(ctx):
    return build_generative(ctx, negative=False)
