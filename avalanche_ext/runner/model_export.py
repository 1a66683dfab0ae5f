"""The trained model of a run, logged to MLflow with its plugins' state and the benchmark as a dataset input.

The model is logged with ``mlflow.pytorch.log_model`` under the name ``model`` (so
``mlflow.pytorch.load_model("runs:/<id>/model")`` loads it), with an input example taken
from the test stream and the signature inferred from it (a model that needs task labels as
well gets a signature of its inputs, and MLflow's warning that it cannot answer the example alone is
not shown), the module pickled on purpose (its
class kept; MLflow's warning about the format is not shown), explicit pip requirements (nothing
inferred, no network) and ``plugin_states.pt`` as an extra file: the ``state_dict()`` of every
plugin that has one (masks, task embeddings, buffers), in the order of ``strategy.plugins``.
Functions defined inside a recipe that a module keeps for training (an ensemble's member
factory) are left out of the pickle (``None`` in the logged model): they would carry the
recipe's context, the whole benchmark included, into the model.

A method that infers the task of its inputs (the model or a plugin implements
``inferred_tasks``, see :mod:`avalanche_ext.metrics.task_inference`) outside the task scenario
is logged as a :class:`ClassPredictor`: its ``forward(x)`` takes a batch of flattened or shaped
inputs and returns the predicted classes, so that the model's pyfunc flavour (and
``mlflow models serve``) answers with class predictions; ``.network`` is the trained model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
import types
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from ..logging import MLflowLogger
from ..metrics.task_inference import InfersTasks

#: Packages the logged model needs, pinned to the versions that trained it.
_REQUIREMENTS = ("torch", "avalanche-lib", "avalanche-ext", "numpy")


class ClassPredictor(torch.nn.Module):
    """A model that infers the task itself, turned into a classifier of plain input batches.

    Args:
        network: the trained model (called without task labels).
        input_shape: the shape of one input; flattened inputs are reshaped to it.
        router: where the task is inferred outside the model (SupSup's plugin): an object whose
            ``route_batch(network, x)`` sets the network's route for the batch before the forward pass.
    """

    def __init__(self, network: torch.nn.Module, input_shape: tuple[int, ...], router: Optional[Any] = None):
        super().__init__()
        self.network = network
        self.input_shape = tuple(input_shape)
        self.router = router

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().reshape(x.shape[0], *self.input_shape)
        if self.router is not None:
            self.router.route_batch(self.network, x)
        with torch.no_grad():
            return self.network(x).argmax(dim=1)


def infers_tasks(strategy: Any, scenario: str) -> bool:
    """Whether the strategy classifies without task labels by inferring the task (outside task-IL)."""
    if scenario == "task":
        return False
    owners = (getattr(strategy, "model", None), *getattr(strategy, "plugins", ()))
    return any(o is not None and isinstance(o, InfersTasks) for o in owners)


@contextlib.contextmanager
def without_local_functions(model: torch.nn.Module) -> Iterator[None]:
    """Within: every attribute of ``model``'s modules that is a function defined inside another is None."""
    taken = []
    for module in model.modules():
        for name, value in list(vars(module).items()):
            if isinstance(value, types.FunctionType) and "<locals>" in value.__qualname__:
                taken.append((module, name, value))
                module.__dict__[name] = None
    try:
        yield
    finally:
        for module, name, value in taken:
            module.__dict__[name] = value


def output_of(model: torch.nn.Module, example: np.ndarray) -> Optional[np.ndarray]:
    """``model``'s output on ``example``; None when the model needs more than the inputs (task labels
    in task-IL) or gives something other than a tensor: the signature then describes the inputs only."""
    try:
        with torch.no_grad():
            output = model(torch.as_tensor(example))
    except (TypeError, ValueError, RuntimeError):
        return None
    return output.cpu().numpy() if isinstance(output, torch.Tensor) else None


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Within: the loggers ``names`` show errors only (MLflow's warnings that say nothing new here)."""
    logs = [logging.getLogger(name) for name in names]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)


def plugin_states(strategy: Any) -> dict[str, Any]:
    """``{"<index>:<class name>": state_dict()}`` of every plugin that has a state to give."""
    states = {}
    for i, plugin in enumerate(getattr(strategy, "plugins", None) or []):
        if not callable(getattr(plugin, "state_dict", None)) or isinstance(plugin, MLflowLogger):
            continue
        try:
            state = plugin.state_dict()
        except NotImplementedError:
            continue
        if state:
            states[f"{i}:{type(plugin).__name__}"] = state
    return states


def pip_requirements() -> list[str]:
    """The packages the model needs, at the installed versions (never inferred)."""
    reqs = []
    for pkg in _REQUIREMENTS:
        try:
            reqs.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            continue
    return reqs


def input_example(stream: Any, n: int = 4) -> np.ndarray:
    """The first ``n`` inputs of the test stream's first experience, as float32."""
    dataset = stream.test_stream[0].dataset
    return np.stack([np.asarray(dataset[i][0], dtype=np.float32) for i in range(min(n, len(dataset)))])


def stream_digest(stream: Any, source: dict[str, Any]) -> str:
    """A digest of the benchmark: its settings and the sizes of every experience."""
    sizes = [[len(e.dataset) for e in stream.train_stream], [len(e.dataset) for e in stream.test_stream]]
    text = json.dumps({**source, "sizes": sizes}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def log_dataset(logger: MLflowLogger, stream: Any, benchmark: str, n_experiences: int) -> None:
    """The benchmark as the run's dataset input: name, seed, scenario, digest."""
    source = {"benchmark": benchmark, "scenario": stream.scenario, "seed": stream.seed,
              "n_experiences": n_experiences, "validation": bool(stream.validation)}
    logger.log_dataset(benchmark, stream_digest(stream, source), source)


def log_trained_model(logger: MLflowLogger, strategy: Any, stream: Any) -> None:
    """Log the trained model as ``model`` (see the module docstring); spooled if the store is gone."""
    import mlflow
    from mlflow.models import infer_signature

    network = strategy.model.cpu().eval()
    model: torch.nn.Module = network
    if infers_tasks(strategy, stream.scenario):
        router = next((p for p in getattr(strategy, "plugins", ()) if callable(getattr(p, "route_batch", None))), None)
        model = ClassPredictor(network, stream.input_shape, router)
    example = input_example(stream)
    output = output_of(model, example)
    signature = infer_signature(example) if output is None else infer_signature(example, output)
    with tempfile.TemporaryDirectory() as tmp:
        states = Path(tmp) / "plugin_states.pt"
        torch.save(plugin_states(strategy), states)
        kwargs = dict(signature=signature, input_example=example, pip_requirements=pip_requirements(),
                      serialization_format="pickle", extra_files=[str(states)])
        # MLflow checks that a served model answers its example and warns when it does not; a model that
        # needs task labels as well cannot, and that warning says nothing new
        quiet = ("mlflow.pytorch",) if output is not None else ("mlflow.pytorch", "mlflow.models.model")
        local = Path(tmp) / "model"

        def upload() -> None:
            from mlflow.tracking import fluent

            # log_model takes the store and the experiment of its logged model from MLflow's globals
            previous = mlflow.get_tracking_uri(), fluent._active_experiment_id
            mlflow.set_tracking_uri(logger.tracking_uri)
            fluent._active_experiment_id = logger.client.get_run(logger.run_id).info.experiment_id
            try:
                mlflow.pytorch.log_model(model, name="model", run_id=logger.run_id, **kwargs)
            finally:
                mlflow.set_tracking_uri(previous[0])
                fluent._active_experiment_id = previous[1]

        def keep(spool: Any) -> dict[str, Any]:
            mlflow.pytorch.save_model(model, str(local), **kwargs)
            return {"op": "artifacts", "dir": spool.keep(local), "artifact_path": "model"}

        with without_local_functions(model), _quiet(*quiet):
            logger.writer.send(keep, upload)
