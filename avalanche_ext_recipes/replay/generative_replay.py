"""Deep generative replay: a VAE learns the inputs continually; its samples, labelled by the old model, are replayed."""

from avalanche.training import Naive

from avalanche_ext.models.image_vae import ImageVAE
from avalanche_ext.plugins.deep_generative_replay import DeepGenerativeReplayPlugin
from avalanche_ext.registry import register


@register(
    name="generative_replay",
    family="replay",
    paper="Shin, Lee, Kim, Kim, Continual Learning with Deep Generative Replay, NeurIPS 2017, arXiv:1705.08690; "
          "van de Ven, Tolias, Three scenarios for continual learning, 2019, arXiv:1904.07734",
    scenarios=("class", "domain"),
    # van de Ven's split MNIST generator: a 400-400 VAE with a 100-d code, Adam 1e-3; replayed
    # samples weighted (t-1)/t, as many as real ones per batch, soft targets at temperature 2
    grid={"lr": (1e-3, 3e-3), "gen_lr": (1e-3, 1e-2)},
    hparams={"gen_hidden": 400, "gen_layers": 2, "gen_latent": 100, "gen_lr": 1e-3, "gen_iterations": 1000,
             "targets": "soft", "temperature": 2.0},
    summary="replay samples of a continually trained VAE, labelled by the previous model, weighted by tasks seen",
    choices={"targets": ("hard", "soft")},
)
def build(ctx):
    hp = ctx.hp
    generator = ImageVAE(ctx.stream.input_shape, hidden=[hp.gen_hidden] * hp.gen_layers, latent_dim=hp.gen_latent)
    plugin = DeepGenerativeReplayPlugin(
        generator, generator_iterations=hp.gen_iterations, generator_lr=hp.gen_lr,
        targets=hp.targets, temperature=hp.temperature,
    )
    model = ctx.model()
    return Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args(plugins=[plugin]))
