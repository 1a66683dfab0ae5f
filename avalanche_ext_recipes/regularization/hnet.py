"""Hypernetworks (HNET): a chunked hypernetwork generates the target net's weights per task; its outputs
for earlier task embeddings are regularized to stay put. Class-/domain-IL infer the task by entropy."""

from avalanche.training import Naive

from avalanche_ext.models import build_network
from avalanche_ext.models.hypernet import HyperNetClassifier
from avalanche_ext.plugins.hypernet import HypernetworkPlugin
from avalanche_ext.registry import register


@register(
    name="hnet",
    family="regularization",
    paper="von Oswald, Henning, Grewe, Sacramento, Continual learning with hypernetworks, ICLR 2020, "
          "arXiv:1906.00695",
    scenarios=("task", "class", "domain"),
    grid={"lr": (3e-4, 1e-3), "beta": (0.003, 0.01)},
    # paper-style split MNIST settings: Adam 1e-3, target MLP 400-400, beta 0.01, task embedding 96,
    # chunk embedding 96, chunks of 42,000 weights from a 10-10 hypernetwork (compression ratio < 1)
    hparams={"beta": 0.01, "lookahead": False, "embedding_dim": 96, "chunk_size": 42000,
             "chunk_embedding_dim": 96, "hnet_hidden": [10, 10], "hnet_activation": "relu"},
    per_benchmark={
        # 64-pixel inputs: a target of about 55k weights, so smaller chunks keep the ratio near 1
        "split_digits": {"chunk_size": 6000},
        "permuted_digits": {"chunk_size": 6000},
        # chosen on the validation split (docs/results/validation/hnet_permuted_mnist5k_domain*.md)
        "permuted_mnist5k": {"dropout": 0.2, "epochs": 8, "beta": 0.003},
    },
    summary="weights generated per task by a chunked hypernetwork; its outputs for old tasks are regularized",
    amp=False,  # no mixed precision: the lookahead regularizer differentiates the loss itself inside the step
)
def build(ctx):
    hp = ctx.hp
    stream = ctx.stream
    target = build_network(stream.input_shape, stream.n_outputs, arch=hp.arch, hidden=hp.hidden, layers=hp.layers,
                           dropout=hp.dropout, multihead=False)
    model = HyperNetClassifier(
        target,
        task_inference=ctx.scenario != "task",  # HNET+ENT without task labels
        embedding_dim=hp.embedding_dim,
        chunk_size=hp.chunk_size,
        chunk_embedding_dim=hp.chunk_embedding_dim,
        hidden=list(hp.hnet_hidden),
        activation=hp.hnet_activation,
    )
    plugin = HypernetworkPlugin(beta=hp.beta, lookahead=hp.lookahead)
    return Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args(plugins=[plugin]))
