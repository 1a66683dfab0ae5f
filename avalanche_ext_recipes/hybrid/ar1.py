"""AR1 recomposed from plugins: CWR* output layer + Synaptic Intelligence + latent replay."""

import torch
from avalanche.training import Naive

from avalanche_ext.models.latent_split import split_model
from avalanche_ext.plugins.cwr_star import CWRStarHead
from avalanche_ext.plugins.latent_replay import LatentReplayPlugin
from avalanche_ext.plugins.synaptic_intelligence import SafeSynapticIntelligencePlugin
from avalanche_ext.registry import register

#: ``latent_layer="auto"``: the cut per network, a middle layer as in the paper (MLP and CNN: the output
#: of their first block; the reduced ResNet-18: the output of its third stage).
AUTO_LAYER = {"mlp": "features.2", "cnn": "features.2", "resnet18": "features.layer3"}

@register(
    name="ar1",
    family="hybrid",
    paper="Maltoni & Lomonaco, Continuous learning in single-incremental-task scenarios, Neural Networks 2019, arXiv:1806.08568 (AR1); Pellegrini et al., Latent Replay, IROS 2020, arXiv:1912.01100 (AR1* with latent replay)",
    scenarios=("class",),
    grid={"lr": (1e-3, 3e-3), "si_lambda": (1.0, 1000.0)},
    hparams={"latent_layer": "auto", "mem_size": 200, "balance": "class", "replay_batch_size": 0,
             "free_exps": 1, "lower_lr_factor": 0.0, "si_lambda": 1.0, "si_eps": 1e-7, "mean_shift": True},
    per_benchmark={
        "split_mnist5k": {"mem_size": 1000},
        # split_fmnist si_lambda: chosen on the validation split, docs/results/validation/ar1_split_fmnist_class.md
        "split_fmnist": {"mem_size": 1500, "pretrain": "mnist5k", "free_exps": 0, "si_lambda": 1000.0},
    },
    summary="CWR* head + SI on the layers above the latent layer + latent replay (no weight download)",
)
def build(ctx):
    hp = ctx.hp
    model = ctx.model(multihead=False)
    example = torch.zeros(2, *ctx.stream.input_shape)
    layer = AUTO_LAYER.get(hp.arch, "features.2") if hp.latent_layer == "auto" else hp.latent_layer
    below, _ = split_model(model, layer, example)
    # SI protects the layers between the latent layer and the output; the output layer is CWR*'s,
    # the layers below the latent layer are frozen after the first experience(s).
    excluded = ["classifier", *below]
    replay = LatentReplayPlugin(
        layer, hp.mem_size, balance=hp.balance, replay_batch_size=hp.replay_batch_size or None,
        free_experiences=hp.free_exps, lower_lr_factor=hp.lower_lr_factor, seed=ctx.seed,
    )
    plugins = [CWRStarHead("classifier", mean_shift=hp.mean_shift), replay]
    if hp.si_lambda > 0:
        plugins.append(SafeSynapticIntelligencePlugin(hp.si_lambda, eps=hp.si_eps, excluded_parameters=excluded))
    strategy = Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args(plugins=plugins))
    replay.measure(model, ctx.stream.input_shape)  # its memory_report() is complete before training
    return strategy
