"""Progress & Compress: an active column learns each task, a knowledge base distils it under online EWC.

``epochs`` is the length of the progress phase, ``compress_epochs`` that of the compress
phase (both per experience). ``lateral`` is ``auto`` (adaptors into every layer but the
first), ``none`` (no adaptor: the active column learns alone) or comma-separated layer
names of the column; ``adaptor_width`` ``0`` means ``min(fan_in, fan_out)`` per layer.
"""

from avalanche_ext.models.progress_compress import ProgressCompressNet
from avalanche_ext.registry import register
from avalanche_ext.templates import ProgressCompress


def parse_lateral(text: str):
    """``"auto"`` -> ``"auto"``, ``"none"`` -> ``()``, ``"a,b"`` -> ``("a", "b")``."""
    text = text.strip()
    if text in ("auto", "none", ""):
        return () if text in ("none", "") else "auto"
    return tuple(t.strip() for t in text.split(",") if t.strip())


@register(
    name="progress_compress",
    family="hybrid",
    paper="Schwarz et al., Progress & Compress: A scalable framework for continual learning, ICML 2018, "
          "arXiv:1805.06370",
    scenarios=("task", "domain", "class"),
    grid={"lr": (3e-4, 1e-3), "ewc_lambda": (30.0, 100.0)},
    hparams={
        "compress_epochs": 2,
        "ewc_lambda": 100.0,
        "gamma": 1.0,
        "normalize": "max",
        "fisher_samples": None,
        "reset_adaptors": False,
        "lateral": "auto",
        "adaptor_width": 0,
    },
    # chosen on the validation split: docs/results/validation/progress_compress_*.md
    per_benchmark={"permuted_mnist5k": {"compress_epochs": 8, "ewc_lambda": 30.0, "lateral": "none",
                                        "dropout": 0.2, "epochs": 8}},
    summary="active column with lateral adaptors (progress), distilled into a knowledge base under online EWC (compress)",
    amp=False,  # no mixed precision: the template trains in phases of its own (progress, compress)
)
def build(ctx):
    hp = ctx.hp
    if hp.adaptor_width < 0:
        raise ValueError(f"adaptor_width must be >= 0 (0: automatic), got {hp.adaptor_width}")
    net = ProgressCompressNet(ctx.model(), lateral=parse_lateral(hp.lateral), adaptor_width=hp.adaptor_width or None)
    args = ctx.strategy_args()
    args.pop("train_epochs")
    return ProgressCompress(
        model=net,
        optimizer=ctx.optimizer(net),
        progress_epochs=hp.epochs,
        compress_epochs=hp.compress_epochs,
        ewc_lambda=hp.ewc_lambda,
        gamma=hp.gamma,
        normalize=hp.normalize,
        fisher_samples=hp.fisher_samples,
        reset_adaptors=hp.reset_adaptors,
        **args,
    )
