"""Latent replay: freeze the layers below a named latent layer, replay stored activations there."""

from avalanche.training import Naive

from avalanche_ext.plugins.latent_replay import LatentReplayPlugin
from avalanche_ext.registry import register


@register(
    name="latent_replay",
    family="replay",
    paper="Pellegrini, Graffieti, Lomonaco, Maltoni, Latent Replay for Real-Time Continual Learning, IROS 2020, arXiv:1912.01100",
    scenarios=("class", "domain"),
    grid={"lr": (1e-3, 3e-3), "lower_lr_factor": (0.0, 0.1)},
    hparams={"latent_layer": "features", "mem_size": 200, "balance": "class", "replay_batch_size": 0,
             "free_exps": 1, "lower_lr_factor": 0.0},
    per_benchmark={
        "split_mnist5k": {"mem_size": 1000},
        "split_fmnist": {"mem_size": 1500, "pretrain": "mnist5k", "free_exps": 0},
        "permuted_fmnist": {"mem_size": 1500, "pretrain": "mnist5k", "free_exps": 0},
    },
    summary="freeze layers below a latent layer, replay stored latent activations (balanced memory)",
)
def build(ctx):
    hp = ctx.hp
    model = ctx.model(multihead=False)
    plugin = LatentReplayPlugin(
        hp.latent_layer, hp.mem_size, balance=hp.balance, replay_batch_size=hp.replay_batch_size or None,
        free_experiences=hp.free_exps, lower_lr_factor=hp.lower_lr_factor, seed=ctx.seed,
    )
    strategy = Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args(plugins=[plugin]))
    plugin.measure(model, ctx.stream.input_shape)  # its memory_report() is complete before training
    return strategy
