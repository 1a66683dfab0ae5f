"""A run's benchmark as an MLflow dataset input (what ``mlflow.log_input`` records, through the client)."""

from __future__ import annotations

import json
from typing import Any


def dataset_record(name: str, digest: str, source: dict[str, Any], context: str = "train") -> dict[str, Any]:
    """A plain description of one dataset input (kept in a spool as it is)."""
    return {"name": name, "digest": digest, "source": source, "context": context}


def dataset_inputs(records: list[dict[str, Any]]) -> list:
    """MLflow ``DatasetInput`` entities for :func:`dataset_record` descriptions."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    return [DatasetInput(Dataset(name=r["name"], digest=r["digest"][:36], source_type="code",
                                 source=json.dumps(r["source"], sort_keys=True),
                                 profile=json.dumps(r["source"], sort_keys=True)),
                         tags=[InputTag("mlflow.data.context", r["context"])])
            for r in records]
