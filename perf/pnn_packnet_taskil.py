"""Task-IL split_mnist5k: PNN and PackNet as Avalanche 0.6.0 wires them and as the recipes wire them now.

References: ``naive`` (shared trunk, one head per task), ``ensemble`` (one separate 400-400 network
per task, picked by the task label). ``pnn_as_is`` / ``packnet_as_is`` are the recipes' former
wiring, defined here only: Avalanche's ``PNN`` as it is, and ``PackNetModel`` over a single head.

``--cause`` first shows, without training past the first experience, why ``pnn_as_is`` fails: the
evaluation of the whole test stream after experience 0 adds a column for every later task and
freezes them; and, after a full run, what share of ``packnet_as_is``'s shared output layer each task owns.

Settings chosen on the validation split (perf/results/pnn_packnet_taskil_validation.txt)::

    python perf/pnn_packnet_taskil.py --cause --seeds 0 1 2 --validation --configs naive=naive ensemble=ensemble \
        pnn_as_is=pnn_as_is pnn=pnn:pnn_hidden=100 pnn_h400=pnn:pnn_hidden=400 packnet_as_is=packnet_as_is \
        packnet=packnet:prune_proportion=0.5 packnet_p75=packnet:prune_proportion=0.75 \
        packnet_p90=packnet:prune_proportion=0.9

Test numbers with the recipes' settings (perf/results/pnn_packnet_taskil_test.txt)::

    python perf/pnn_packnet_taskil.py --seeds 0 1 2 --configs naive=naive pnn=pnn packnet=packnet
"""

from __future__ import annotations

import argparse

from _runs import run_seeds, summary

from avalanche_ext.registry import register

BENCHMARK = "split_mnist5k"
DEFAULT = ["naive=naive", "ensemble=ensemble", "pnn_as_is=pnn_as_is", "pnn=pnn",
           "packnet_as_is=packnet_as_is", "packnet=packnet"]


@register(name="pnn_as_is", family="architectural", paper="-", scenarios=("task",), hparams={"pnn_hidden": 100},
          summary="Avalanche 0.6.0's PNN and PNNStrategy, as the pnn recipe used to build them")
def _pnn_as_is(ctx):
    from avalanche.models import PNN
    from avalanche.training import PNNStrategy

    model = PNN(num_layers=ctx.hp.layers, in_features=ctx.stream.input_size, hidden_features_per_column=ctx.hp.pnn_hidden)
    return PNNStrategy(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args())


@register(name="packnet_as_is", family="architectural", paper="-", scenarios=("task",),
          hparams={"post_prune_epochs": 1, "prune_proportion": 0.5},
          summary="Avalanche 0.6.0's PackNetModel over the single-head MLP, as the packnet recipe used to build it")
def _packnet_as_is(ctx):
    from avalanche.models.packnet import PackNetModel
    from avalanche.training import PackNet

    hp = ctx.hp
    model = PackNetModel(ctx.model(multihead=False))
    return PackNet(model=model, optimizer=ctx.optimizer(model), post_prune_epochs=hp.post_prune_epochs,
                   prune_proportion=hp.prune_proportion,
                   **ctx.strategy_args(train_epochs=hp.epochs + hp.post_prune_epochs))


def _strategy(recipe_name: str, seed: int, validation: bool):
    from avalanche_ext.benchmarks import build_benchmark
    from avalanche_ext.recipe import RecipeContext
    from avalanche_ext.runner import RunConfig, make_evaluator, seed_everything, validate

    cfg = RunConfig(recipe_name, benchmark=BENCHMARK, scenario="task", seed=seed, validation=validation)
    recipe, scenario, hp = validate(cfg)
    stream = build_benchmark(BENCHMARK, scenario, seed=seed, validation=validation)
    seed_everything(seed)
    return recipe.build(RecipeContext(stream, hp, make_evaluator([]), seed=seed)), stream


def show_cause(seed: int, validation: bool) -> None:
    print(f"--- cause (seed {seed}) ---")
    for name in ("pnn_as_is", "pnn"):
        strategy, stream = _strategy(name, seed, validation)
        strategy.train(stream.train_stream[0])
        strategy.eval(stream.test_stream)
        layer = strategy.model.layers[0]
        frozen = [all(not p.requires_grad for p in col.parameters()) for col in layer.columns]
        print(f"{name:12} after training task 0 and evaluating tasks 0-4: columns {layer.num_columns}, "
              f"task -> column {layer.task_to_module_idx}, column frozen {frozen}")
    strategy, stream = _strategy("packnet_as_is", seed, validation)
    for exp in stream.train_stream:
        strategy.train(exp)
    owner = strategy.model.wrappee.classifier.task_index.flatten().tolist()
    print("packnet_as_is: share of the shared output layer's weights owned by tasks 0-4:",
          [f"{100 * owner.count(t) / len(owner):.1f}%" for t in range(5)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--validation", action="store_true", help="evaluate on the validation split (to choose settings)")
    p.add_argument("--cause", action="store_true", help="print the diagnosis first")
    p.add_argument("--configs", nargs="+", default=DEFAULT, help="label=recipe[:key=value,...]")
    args = p.parse_args()
    if args.cause:
        show_cause(args.seeds[0], args.validation)
    rows = []
    for item in args.configs:
        label, spec = item.split("=", 1)
        recipe, _, sets = spec.partition(":")
        overrides = dict(kv.split("=", 1) for kv in sets.split(",") if kv)
        rows += run_seeds(label, recipe, benchmark=BENCHMARK, scenario="task", seeds=args.seeds,
                          overrides=overrides, validation=args.validation)
    summary(rows)


if __name__ == "__main__":
    main()
