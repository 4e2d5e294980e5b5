"""The models loaded in this process, by id: one per model, shared by the lanes that use it."""

from __future__ import annotations

import threading
import time

from playground.core.catalog import ModelSpec
from playground.core.engine import Model
from playground.core.gguf import file_sha256
from playground.core.remote import RemoteModel

LoadedModel = Model | RemoteModel
"""A model a lane answers with: loaded here, or behind a server."""


class ModelPool:
    """Loaded models by id: one `Llama` per model, shared by the lanes that use it."""

    def __init__(self, n_gpu_layers: int | None = None):
        self.n_gpu_layers = n_gpu_layers
        self._models: dict[str, LoadedModel] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._sha: dict[str, str] = {}

    def loaded(self, model_id: str) -> LoadedModel | None:
        return self._models.get(model_id)

    def models(self) -> list[LoadedModel]:
        """Every model loaded so far."""
        return list(self._models.values())

    def get(self, spec: ModelSpec) -> tuple[LoadedModel, float]:
        """The loaded model and the seconds this call spent loading it (0 if it was loaded)."""
        with self._lock:
            lock = self._locks.setdefault(spec.id, threading.Lock())
        with lock:
            if spec.id in self._models:
                return self._models[spec.id], 0.0
            t0 = time.perf_counter()
            model: LoadedModel
            if spec.is_remote:
                model = RemoteModel(spec)
                model.check()
            else:
                model = Model(spec, n_gpu_layers=self.n_gpu_layers)
            self._models[spec.id] = model
            return model, time.perf_counter() - t0

    def sha256(self, model: LoadedModel) -> str | None:
        if isinstance(model, RemoteModel):
            return None
        if model.model_id not in self._sha:
            self._sha[model.model_id] = file_sha256(model.path)
        return self._sha[model.model_id]

    def close(self) -> None:
        for m in self._models.values():
            m.close()
        self._models.clear()
