"""ExStream: per-class memory whose full classes merge their two nearest points (count-weighted)."""

from avalanche.training import Naive
from avalanche.training.plugins import ReplayPlugin

from avalanche_ext.plugins import BufferRehearsalPlugin, ExStreamPlugin
from avalanche_ext.registry import register
from avalanche_ext.storage import ExStreamBuffer
from avalanche_ext.storage.cluster_store import LINKAGES


def n_label_groups(stream) -> int:
    """How many (task, class) groups the buffer will see: classes, per task in task-IL."""
    if stream.multihead:
        return sum(len(classes) for classes in stream.classes_per_exp)
    return stream.n_outputs


@register(
    name="exstream",
    family="replay",
    paper="Hayes, Cahill, Kanan, Memory Efficient Experience Replay for Streaming Learning, ICRA 2019, arXiv:1809.05922",
    scenarios=("class", "task", "domain"),
    grid={"lr": (1e-3, 3e-3), "linkage": ("centroid", "ward")},
    hparams={"mem_size": 200, "balance": "class", "space": "raw", "rehearsal": "mixed", "batch_size_mem": 32,
             "linkage": "ward"},
    per_benchmark={"split_mnist5k": {"mem_size": 1000}, "permuted_mnist5k": {"mem_size": 1000},
                   "split_fmnist": {"mem_size": 1000}, "permuted_fmnist": {"mem_size": 1000}},
    summary="replay a per-class memory that merges its two nearest points into their weighted mean",
    choices={"balance": ("class", "global"), "space": ("raw", "latent"), "rehearsal": ("mixed", "buffer"),
             "linkage": LINKAGES},
)
def build(ctx):
    """``balance``: ``class`` (mem_size / classes points per class) or ``global`` (shared,
    the largest class merges); ``space``: ``raw`` (inputs, Avalanche's ReplayPlugin) or
    ``latent`` (the network's ``features`` are frozen and the buffer stores their output,
    replayed into ``classifier``); ``rehearsal``: ``mixed`` (``batch_size_mem`` buffer samples join
    every mini-batch of new data) or ``buffer`` (the paper's protocol: the experience goes into the
    buffer first, then training passes over the whole buffer, in raw space only); ``linkage``:
    ``centroid`` (the paper's nearest pair in L2) or ``ward`` (the pair whose merge adds least
    to the within-cluster sum of squares)."""
    hp = ctx.hp
    if hp.rehearsal == "buffer" and hp.space != "raw":
        raise ValueError("exstream: rehearsal='buffer' trains the whole model on the buffer, so it needs space='raw'")
    per_class = None
    if hp.balance == "class":
        groups = n_label_groups(ctx.stream)
        per_class = hp.mem_size // groups
        if per_class < 1:
            raise ValueError(f"exstream: mem_size={hp.mem_size} is less than one point for each of {groups} classes")
    model = ctx.model()
    if hp.space == "raw":
        buffer = ExStreamBuffer(hp.mem_size, per_class=per_class, linkage=hp.linkage)
        if hp.rehearsal == "buffer":
            plugin = BufferRehearsalPlugin(buffer)
        else:
            plugin = ReplayPlugin(mem_size=hp.mem_size, batch_size_mem=hp.batch_size_mem, storage_policy=buffer)
        params = model.parameters()
    else:
        for p in model.features.parameters():
            p.requires_grad_(False)
        buffer = ExStreamBuffer(hp.mem_size, per_class=per_class, feature_extractor=model.features,
                                linkage=hp.linkage)
        plugin = ExStreamPlugin(buffer, batch_size_mem=hp.batch_size_mem, head="classifier", seed=ctx.seed)
        params = [p for p in model.parameters() if p.requires_grad]
    return Naive(model=model, optimizer=ctx.optimizer(params), **ctx.strategy_args(plugins=[plugin]))
