"""Generative Negative Replay: CWR* head plus VAE-generated latents replayed as negatives only."""

from avalanche.training import Naive

from avalanche_ext.plugins.cwr_star import CWRStarHead
from avalanche_ext.plugins.generative_latent_replay import GenerativeLatentReplayPlugin
from avalanche_ext.registry import register

HPARAMS = {"latent_layer": "features", "replay_batch_size": 0, "free_exps": 1, "lower_lr_factor": 0.0,
           "conditional": True, "vae_hidden": 256, "code_dim": 32, "beta": 1.0, "vae_epochs": 10, "vae_lr": 1e-3,
           "old_rows": "consolidated", "mean_shift": False}
# Fashion-MNIST: backbone pretrained on the MNIST subset and frozen from the start; learning rate and
# generated latents per minibatch chosen per variant on the validation split (perf/gnr_compare.py --validation).
PRETRAINED = {"pretrain": "mnist5k", "free_exps": 0}
PER_BENCHMARK_NEGATIVE = {"split_fmnist": {**PRETRAINED, "lr": 1e-2, "replay_batch_size": 256}}
PER_BENCHMARK_POSITIVE = {"split_fmnist": {**PRETRAINED, "lr": 3e-3, "replay_batch_size": 128}}
PAPER = ("Graffieti, Maltoni, Pellegrini, Lomonaco, Generative Negative Replay for Continual Learning, "
         "Neural Networks 162, 2023, arXiv:2204.05842")
#: what ``gnr`` and ``generative_latent_replay`` share in the registry, their validation grid included:
#: the negative variant and its positive control are searched alike.
SHARED = {"family": "hybrid", "scenarios": ("class",), "hparams": HPARAMS,
          "grid": {"lr": (1e-3, 3e-3), "replay_batch_size": (0, 128)}}


def build_generative(ctx, negative: bool):
    """The strategy of ``gnr`` (``negative=True``) and ``generative_latent_replay`` (``False``)."""
    hp = ctx.hp
    model = ctx.model(multihead=False)
    gen = GenerativeLatentReplayPlugin(
        hp.latent_layer, negative=negative, replay_batch_size=hp.replay_batch_size or None,
        free_experiences=hp.free_exps, lower_lr_factor=hp.lower_lr_factor, conditional=hp.conditional,
        vae_hidden=hp.vae_hidden, code_dim=hp.code_dim, beta=hp.beta, vae_epochs=hp.vae_epochs, vae_lr=hp.vae_lr,
        seed=ctx.seed,
    )
    head = CWRStarHead("classifier", old_rows=hp.old_rows, mean_shift=hp.mean_shift)
    strategy = Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args(plugins=[head, gen]))
    # its memory_report(): the generator's bytes, and the stored samples (latents or raw inputs) they would buy
    gen.measure(model, ctx.stream.input_shape)
    return strategy


@register(
    name="gnr",
    paper=PAPER,
    per_benchmark=PER_BENCHMARK_NEGATIVE,
    summary="CWR* head; VAE-generated latents replayed as negatives of the current classes only",
    **SHARED,
)
def build(ctx):
    return build_generative(ctx, negative=True)
