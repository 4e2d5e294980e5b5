"""Read a GGUF file's header without loading the model, and fingerprint it.

Checking the header first turns "llama.cpp failed to load" into a message that says what is wrong
with the file (not GGUF, truncated, a directory...). Arrays such as the 262,144-entry vocabulary are
skipped over through a memory map instead of being decoded, so inspecting a 4 GB file takes
milliseconds. The sha256 that goes into the log is cached by (path, size, mtime) so a large file is
hashed once, not on every start.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path

from playground.core.errors import PlaygroundError
from playground.core.locations import cache_dir

GGUF_MAGIC = b"GGUF"

# A metadata value as read: a number, a flag or text (an array is an `_ArrayLen`, an int).
MetaValue = int | float | bool | str

# GGUF metadata value types.
_U8, _I8, _U16, _I16, _U32, _I32, _F32, _BOOL, _STR, _ARR, _U64, _I64, _F64 = range(13)
_SCALAR = {
    _U8: "<B",
    _I8: "<b",
    _U16: "<H",
    _I16: "<h",
    _U32: "<I",
    _I32: "<i",
    _F32: "<f",
    _BOOL: "<?",
    _U64: "<Q",
    _I64: "<q",
    _F64: "<d",
}

# ggml tensor types: (elements per block, bytes per block). From ggml's type traits.
GGML_BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4),  # F32
    1: (1, 2),  # F16
    2: (32, 18),  # Q4_0
    3: (32, 20),  # Q4_1
    6: (32, 22),  # Q5_0
    7: (32, 24),  # Q5_1
    8: (32, 34),  # Q8_0
    9: (32, 36),  # Q8_1
    10: (256, 84),  # Q2_K
    11: (256, 110),  # Q3_K
    12: (256, 144),  # Q4_K
    13: (256, 176),  # Q5_K
    14: (256, 210),  # Q6_K
    15: (256, 292),  # Q8_K
    16: (256, 66),  # IQ2_XXS
    17: (256, 74),  # IQ2_XS
    18: (256, 98),  # IQ3_XXS
    19: (256, 50),  # IQ1_S
    20: (32, 18),  # IQ4_NL
    21: (256, 110),  # IQ3_S
    22: (256, 82),  # IQ2_S
    23: (256, 136),  # IQ4_XS
    24: (1, 1),  # I8
    25: (1, 2),  # I16
    26: (1, 4),  # I32
    27: (1, 8),  # I64
    28: (1, 8),  # F64
    29: (256, 56),  # IQ1_M
    30: (1, 2),  # BF16
    34: (256, 54),  # TQ1_0
    35: (256, 66),  # TQ2_0
    39: (32, 17),  # MXFP4
}

# llama_ftype, as written in general.file_type.
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}


class GGUFError(PlaygroundError):
    """The file is missing, not a GGUF file, or damaged."""


@dataclass
class GGUFInfo:
    path: Path
    size: int
    version: int
    architecture: str
    name: str
    parameters: int
    quantization: str
    vocab_size: int
    context_length: int
    chat_template: str | None
    bos_token_id: int | None
    eos_token_id: int | None
    add_bos_token: bool | None
    metadata: dict[str, MetaValue] = field(repr=False, default_factory=dict)

    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    @property
    def parameters_human(self) -> str:
        n = self.parameters
        for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if n >= scale:
                return f"{n / scale:.3g}{unit}"
        return str(n)

    def summary(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "size": self.size,
            "architecture": self.architecture,
            "name": self.name,
            "parameters": self.parameters,
            "quantization": self.quantization,
            "vocab_size": self.vocab_size,
            "context_length": self.context_length,
            "chat_template": self.has_chat_template,
        }


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes, path: Path):
        self.buf = buf
        self.pos = 0
        self.path = path

    def need(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            raise GGUFError(
                f"{self.path} is truncated: its header ends at byte {len(self.buf):,} "
                f"but needs at least {self.pos + n:,} bytes (an interrupted download?)"
            )

    def scalar(self, fmt: str) -> int | float | bool:
        size = struct.calcsize(fmt)
        self.need(size)
        value: int | float | bool = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += size
        return value

    def uint(self, fmt: str) -> int:
        """An unsigned integer field ("<I" or "<Q"): a length, a count, an offset, a type."""
        return int(self.scalar(fmt))

    def string(self, limit: int = 1 << 26) -> str:
        n = self.uint("<Q")
        if n > limit:
            raise GGUFError(f"{self.path} is damaged: a string claims {n:,} bytes")
        self.need(n)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        n = self.uint("<Q")
        self.need(n)
        self.pos += n

    def value(self, vtype: int, keep: bool) -> MetaValue:
        if vtype in _SCALAR:
            return self.scalar(_SCALAR[vtype])
        if vtype == _STR:
            return self.string()
        if vtype == _ARR:
            etype = self.uint("<I")
            count = self.uint("<Q")
            if etype in _SCALAR:
                size = struct.calcsize(_SCALAR[etype])
                self.need(size * count)
                self.pos += size * count
            elif etype == _STR:
                for _ in range(count):
                    self.skip_string()
            elif etype == _ARR:
                for _ in range(count):
                    self.value(_ARR, keep=False)
            else:
                raise GGUFError(f"{self.path} is damaged: unknown array element type {etype}")
            return _ArrayLen(count)
        raise GGUFError(f"{self.path} is damaged: unknown metadata value type {vtype}")


class _ArrayLen(int):
    """Stands for an array value: only its length is kept."""


def inspect_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Check that *path* is a readable GGUF file and describe it; raise GGUFError otherwise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise GGUFError(f"model file not found: {p}")
    if p.is_dir():
        raise GGUFError(f"{p} is a directory, not a GGUF model file")
    if not p.is_file():  # opening a FIFO would wait for a writer forever
        raise GGUFError(f"{p} is not a regular file (a pipe or a device), not a GGUF model file")
    try:
        size = p.stat().st_size
        fh = p.open("rb")
    except OSError as e:
        raise GGUFError(f"cannot read model file {p}: {e.strerror or e}") from e
    with fh:
        if size < 24:
            head = fh.read(4)
            if head != GGUF_MAGIC:
                raise GGUFError(f"{p} is not a GGUF model file (it is {size} bytes long)")
            raise GGUFError(f"{p} is truncated: {size} bytes, too short for a GGUF header")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(buf, p, size)


def _parse(buf: mmap.mmap, p: Path, size: int) -> GGUFInfo:
    if buf[:4] != GGUF_MAGIC:
        hint = ""
        if buf[:4] == b"ggjt" or buf[:4] == b"ggml":
            hint = " (it is an old GGML file: convert it to GGUF)"
        elif buf[:2] == b"PK":
            hint = " (it looks like a zip or safetensors archive)"
        raise GGUFError(f"{p} is not a GGUF model file{hint}")
    r = _Reader(buf, p)
    r.pos = 4
    version = r.uint("<I")
    if version not in (2, 3):
        raise GGUFError(f"{p} uses GGUF version {version}; only versions 2 and 3 are supported")
    n_tensors = r.uint("<Q")
    n_kv = r.uint("<Q")
    if n_tensors > 1_000_000 or n_kv > 1_000_000:
        raise GGUFError(f"{p} is damaged: implausible header ({n_tensors} tensors, {n_kv} keys)")
    meta: dict[str, MetaValue] = {}
    for _ in range(n_kv):
        key = r.string(limit=1 << 16)
        vtype = r.uint("<I")
        meta[key] = r.value(vtype, keep=True)
    params = 0
    data_end = 0
    tensors: list[tuple[int, int, int]] = []  # (offset, n_elements, type)
    for _ in range(n_tensors):
        r.skip_string()
        n_dims = r.uint("<I")
        if n_dims > 8:
            raise GGUFError(f"{p} is damaged: a tensor claims {n_dims} dimensions")
        n = 1
        for _ in range(n_dims):
            n *= r.uint("<Q")
        ttype = r.uint("<I")
        offset = r.uint("<Q")
        params += n
        tensors.append((offset, n, ttype))
    alignment = int(meta.get("general.alignment", 32) or 32)
    data_start = (r.pos + alignment - 1) // alignment * alignment
    for offset, n, ttype in tensors:
        block = GGML_BLOCKS.get(ttype)
        if block:
            data_end = max(data_end, data_start + offset + n // block[0] * block[1])
    if data_end > size:
        raise GGUFError(
            f"{p} is truncated: {size:,} bytes on disk, but its tensors need {data_end:,} "
            f"({data_end - size:,} bytes missing; an interrupted download?)"
        )

    arch = str(meta.get("general.architecture", "unknown"))
    ftype = meta.get("general.file_type")
    quant = FILE_TYPES.get(ftype, f"type {ftype}") if isinstance(ftype, int) else "unknown"
    tokens = meta.get("tokenizer.ggml.tokens")
    template = meta.get("tokenizer.chat_template")
    name = meta.get("general.name") or meta.get("general.basename") or p.stem
    add_bos = meta.get("tokenizer.ggml.add_bos_token")
    scalars = {k: v for k, v in meta.items() if not isinstance(v, _ArrayLen)}
    return GGUFInfo(
        path=p,
        size=size,
        version=version,
        architecture=arch,
        name=str(name),
        parameters=params,
        quantization=quant,
        vocab_size=int(tokens) if isinstance(tokens, int) else 0,
        context_length=int(meta.get(f"{arch}.context_length", 0) or 0),
        chat_template=template if isinstance(template, str) and template.strip() else None,
        bos_token_id=_opt_int(meta.get("tokenizer.ggml.bos_token_id")),
        eos_token_id=_opt_int(meta.get("tokenizer.ggml.eos_token_id")),
        add_bos_token=bool(add_bos) if add_bos is not None else None,
        metadata=scalars,
    )


def _opt_int(v: object) -> int | None:
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None


_hash_lock = threading.Lock()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a model file, cached by real path, size and modification time."""
    p = Path(path).resolve()
    st = p.stat()
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = cache_dir() / "sha256.json"
    with _hash_lock:
        cache = _read_json(cache_file)
        if key in cache:
            return cache[key]
        digest = hashlib.sha256()
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        value = digest.hexdigest()
        cache = _read_json(cache_file)
        cache[key] = value
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache, indent=0))
            tmp.replace(cache_file)
        except OSError:
            pass  # a read-only cache only costs a re-hash next time
        return value


def _read_json(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
