"""Positive generative latent replay: GNR's generator and CWR* head, generated latents replayed with their labels."""

from avalanche_ext.registry import register
from avalanche_ext_recipes.hybrid.gnr import PAPER, PER_BENCHMARK_POSITIVE, SHARED, build_generative


@register(name="generative_latent_replay", paper=f"{PAPER} (the positive-replay baseline)",
          per_benchmark=PER_BENCHMARK_POSITIVE, **SHARED,
          summary="CWR* head; VAE-generated latents replayed as ordinary labelled samples (GNR's positive control)")
def build(ctx):
    return build_generative(ctx, negative=False)
