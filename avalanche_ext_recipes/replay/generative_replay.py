"""Deep generative replay: a VAE learns the inputs continually; its samples, labelled by the old model, are replayed."""

import torch
from avalanche.models import MlpVAE
from avalanche.models.generator import VAE_loss
from avalanche.training import GenerativeReplay, VAETraining
from avalanche.training.plugins import GenerativeReplayPlugin

from avalanche_ext.registry import register


@register(
    name="generative_replay",
    family="replay",
    paper="Shin, Lee, Kim, Kim, Continual Learning with Deep Generative Replay, NeurIPS 2017, arXiv:1705.08690",
    scenarios=("class", "domain"),
    grid={"lr": (1e-3, 3e-3), "vae_lr": (1e-3, 1e-2)},
    hparams={"vae_hidden": 16, "vae_lr": 0.01, "vae_epochs": 0},
    summary="replay samples of a continually trained VAE, labelled by the previous model",
)
def build(ctx):
    hp = ctx.hp
    shape = tuple(ctx.stream.input_shape)
    vae = MlpVAE(shape, nhid=hp.vae_hidden, device=ctx.device)
    # MlpVAE's decoder ends in a sigmoid over its own view of the input shape; inputs are in [0, 1].
    generator = VAETraining(
        model=vae,
        optimizer=torch.optim.Adam(vae.parameters(), lr=hp.vae_lr, weight_decay=1e-4),
        criterion=VAE_loss,
        train_mb_size=hp.batch_size,
        train_epochs=hp.vae_epochs or hp.epochs,
        eval_mb_size=hp.eval_batch_size,
        device=ctx.device,
        plugins=[GenerativeReplayPlugin()],
    )
    model = ctx.model()
    return GenerativeReplay(model=model, optimizer=ctx.optimizer(model), generator_strategy=generator,
                            **ctx.strategy_args())
