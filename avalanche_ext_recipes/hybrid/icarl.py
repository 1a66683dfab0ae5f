"""iCaRL: herding exemplars, distillation, nearest-mean-of-exemplars classification."""

from torch import nn
from avalanche.training import ICaRL

from avalanche_ext.plugins import ExemplarMeansPlugin
from avalanche_ext.registry import register


@register(
    name="icarl",
    family="hybrid",
    paper="Rebuffi, Kolesnikov, Sperl, Lampert, iCaRL: Incremental Classifier and Representation Learning, CVPR 2017, arXiv:1611.07725",
    scenarios=("class",),
    grid={"lr": (3e-4, 1e-3, 3e-3, 1e-2)},
    # mirror_means: Avalanche also averages horizontally flipped exemplars into each class mean, as iCaRL did on
    # CIFAR; digits and clothing change class or look when mirrored, so only the natural-image streams keep it
    hparams={"mem_size": 200, "mirror_means": False},
    per_benchmark={"split_mnist5k": {"mem_size": 1000}, "split_fmnist": {"mem_size": 1000},
                   **{b: {"mirror_means": True} for b in ("split_cifar10", "split_cifar100", "split_tinyimagenet",
                                                          "split_tinyimagenet32", "core50_nc", "core50_ni",
                                                          "core50_nc_mini", "core50_ni_mini")}},
    summary="herding memory + distillation; classify by nearest mean of exemplars",
    amp=False,  # no mixed precision: iCaRL's loss is a BCELoss on sigmoid outputs, which autocast refuses
)
def build(ctx):
    net = ctx.model(multihead=False)
    model_parts = nn.ModuleList([net.features, net.classifier])
    plugins = [] if ctx.hp.mirror_means else [ExemplarMeansPlugin()]
    return ICaRL(feature_extractor=net.features, classifier=net.classifier, optimizer=ctx.optimizer(model_parts),
                 memory_size=ctx.hp.mem_size, buffer_transform=None, fixed_memory=True,
                 **{k: v for k, v in ctx.strategy_args(plugins=plugins).items() if k != "criterion"})
