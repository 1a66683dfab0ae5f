"""Per-experience checkpoints of a run, so that ``--resume`` continues where a run died.

A checkpoint is a versioned dictionary written with ``torch.save`` (standard pickle, not
dill) to a temporary file that is then renamed over the previous one, so a process
killed while writing leaves the previous checkpoint intact. It holds:

* ``identity``: recipe, benchmark, scenario, seed, stream length, protocol and every
  resolved hyper-parameter; a checkpoint is only ever loaded into the same run, and its file
  name ends with a short hash of it (:func:`identity_hash`), so runs with other settings
  keep their checkpoints apart;
* ``progress``: the training steps done, the accuracy matrix so far, the training time
  and the MLflow run id (a resumed run continues that MLflow run);
* ``rng``: the states of Python's, NumPy's and PyTorch's generators;
* ``state``: the strategy's state. Every plugin with ``state_dict()`` / ``load_state_dict()``
  is saved through them. Everything else is saved as the strategy's attributes (model,
  optimizer, clock, Avalanche's plugins with their buffers, Fisher matrices, masks,
  generators, template-specific attributes) minus the transient ones (the current data
  loader, mini-batch, loss, experience). The strategy object itself is not saved: on resume
  the recipe builds it again from the same configuration, the saved attributes replace the
  new ones and the new plugins load their saved states. Loggers stay the new run's own
  objects (they are referred to, not copied). Functions defined inside a recipe (closures,
  lambdas: configuration, not state) are not saved either; on resume each is taken from the
  same place in the freshly built strategy.

``file`` writes and checks the file, ``state`` captures and restores a strategy, ``pickling``
holds the pickler that refers to some objects by name.
"""

from __future__ import annotations

from ..training.files import atomic_save
from .errors import CheckpointError, CheckpointMismatchError
from .file import CHECKPOINT_VERSION, Checkpointer, describe_difference, identity_hash, rng_state, set_rng_state
from .pickling import Unsaved
from .state import TRANSIENT, capture_state, restore_state

__all__ = ["CHECKPOINT_VERSION", "TRANSIENT", "CheckpointError", "CheckpointMismatchError", "Checkpointer", "Unsaved", "describe_difference", "identity_hash",
           "atomic_save", "capture_state", "restore_state", "rng_state", "set_rng_state"]
