"""Generative Negative Replay: CWR* head plus VAE-generated latents replayed as negatives only."""

from avalanche.training import Naive

from avalanche_ext.models.latent_vae import LatentVAE
from avalanche_ext.plugins.latent_replay import latent_shape, replay_memory_report
from avalanche_ext.plugins.negative_replay import CWRStarHead, GenerativeLatentReplayPlugin
from avalanche_ext.registry import register

HPARAMS = {"latent_layer": "features", "replay_batch_size": 0, "free_exps": 1, "lower_lr_factor": 0.0,
           "conditional": True, "vae_hidden": 256, "code_dim": 32, "beta": 1.0, "vae_epochs": 10, "vae_lr": 1e-3,
           "old_rows": "consolidated", "mean_shift": False}
# Fashion-MNIST: backbone pretrained on the MNIST subset and frozen from the start; learning rate and
# generated latents per minibatch chosen per variant on the validation split (perf/gnr_compare.py --validation).
PRETRAINED = {"pretrain": "mnist5k", "free_exps": 0}
PER_BENCHMARK_NEGATIVE = {"split_fmnist": {**PRETRAINED, "lr": 1e-2, "replay_batch_size": 256}}
PER_BENCHMARK_POSITIVE = {"split_fmnist": {**PRETRAINED, "lr": 3e-3, "replay_batch_size": 128}}


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
    strategy = Naive(model=model, optimizer=ctx.optimizer(model),
                     **ctx.strategy_args(plugins=[CWRStarHead("classifier", old_rows=hp.old_rows, mean_shift=hp.mean_shift), gen]))
    dim = latent_shape(model, hp.latent_layer, ctx.stream.input_shape)[0]
    vae = LatentVAE(dim, ctx.stream.n_outputs if hp.conditional else None, hidden=hp.vae_hidden, code_dim=hp.code_dim)
    vae_bytes = sum(p.numel() * p.element_size() for p in vae.parameters())
    report = {"memory.generator_bytes": vae_bytes, "memory.generator_params": vae_bytes // 4}
    # stored samples the generator's bytes would buy, as latents and as raw float32 inputs
    n_equal = vae_bytes // (dim * 4)
    report.update({k.replace("memory.", "memory.equal_bytes."): v for k, v in
                   replay_memory_report(model, hp.latent_layer, ctx.stream.input_shape, n_equal).items()})
    strategy.mlflow_params = lambda: report
    return strategy


@register(
    name="gnr",
    family="hybrid",
    paper="Graffieti, Maltoni, Pellegrini, Lomonaco, Generative Negative Replay for Continual Learning, Neural Networks 162, 2023, arXiv:2204.05842",
    scenarios=("class",),
    hparams=HPARAMS,
    per_benchmark=PER_BENCHMARK_NEGATIVE,
    summary="CWR* head; VAE-generated latents replayed as negatives of the current classes only",
)
def build(ctx):
    return build_generative(ctx, negative=True)
