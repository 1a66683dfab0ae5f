"""Hard Attention to the Task: per-task gates over units; gradients of units earlier tasks use are masked."""

from avalanche.training import Naive

from avalanche_ext.models.hat import build_hat_network
from avalanche_ext.plugins.hat import HATPlugin, check_optimizer
from avalanche_ext.registry import register


@register(
    name="hat",
    family="architectural",
    paper="Serrà, Surís, Miron, Karatzoglou, Overcoming catastrophic forgetting with hard attention to the task, "
          "ICML 2018, arXiv:1801.01423",
    scenarios=("task",),
    grid={"lr": (0.05, 0.1), "c": (0.75, 1.5)},
    hparams={"optimizer": "sgd", "lr": 0.05, "momentum": 0.0, "c": 0.75, "s_max": 400.0,
             "thres_emb": 6.0, "clip_grad": 10000.0},
    # Own budget: the paper's plain SGD (no momentum) learns more slowly per epoch than the Adam the other
    # recipes use, so HAT trains for more epochs than the benchmark's common ones on these two benchmarks.
    per_benchmark={"split_mnist5k": {"epochs": 10, "lr": 0.1}, "split_fmnist": {"epochs": 5, "lr": 0.1}},
    summary="per-task sigmoid gates on every layer; weights used by earlier tasks get no gradient",
    # resnet18: gates on every convolution's channels, batch norm per task (avalanche_ext.models.HATResNet)
    choices={"arch": ("mlp", "cnn", "resnet18")},
    amp=False,  # no mixed precision: the multi-head HAT network writes its heads' outputs into a float32 tensor
)
def build(ctx):
    hp = ctx.hp
    stream = ctx.stream
    model = build_hat_network(stream.input_shape, stream.n_outputs, arch=hp.arch, hidden=hp.hidden,
                              layers=hp.layers, s_max=hp.s_max, dropout=hp.dropout)
    optimizer = ctx.optimizer(model)
    check_optimizer(model, optimizer)  # fail now, not at the first update
    plugin = HATPlugin(c=hp.c, thres_emb=hp.thres_emb, clip_grad=hp.clip_grad)
    return Naive(model=model, optimizer=optimizer, **ctx.strategy_args(plugins=[plugin]))
