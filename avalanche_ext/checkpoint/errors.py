"""What goes wrong with checkpoints."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """The checkpoint belongs to another run (recipe, benchmark, seed or settings differ)."""
