import hashlib
import os

import pytest

from playground.core.gguf import GGUFError, file_sha256, inspect_gguf


def test_default_models_are_described(catalog):
    base = catalog.resolve("base").inspect()
    tuned = catalog.resolve("tuned").inspect()
    assert base.architecture == "gemma3"
    assert base.vocab_size == 262144
    assert base.quantization == "Q4_K_M"
    assert 250e6 < base.parameters < 300e6
    assert not base.has_chat_template
    assert base.context_length == 32768
    assert tuned.architecture == "llama"
    assert tuned.vocab_size == 49152
    assert tuned.quantization == "Q4_1"
    assert tuned.has_chat_template and "<|im_start|>" in tuned.chat_template
    assert 130e6 < tuned.parameters < 140e6


def test_missing_file(tmp_path):
    with pytest.raises(GGUFError, match="not found"):
        inspect_gguf(tmp_path / "nope.gguf")


def test_directory(tmp_path):
    with pytest.raises(GGUFError, match="is a directory"):
        inspect_gguf(tmp_path)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    with pytest.raises(GGUFError, match="not a regular file"):
        inspect_gguf(fifo)


def test_not_gguf(tmp_path):
    p = tmp_path / "model.gguf"
    p.write_text("this is a text file, not a model\n" * 10)
    with pytest.raises(GGUFError, match="not a GGUF model file"):
        inspect_gguf(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.gguf"
    p.write_bytes(b"")
    with pytest.raises(GGUFError, match="not a GGUF"):
        inspect_gguf(p)


@pytest.mark.parametrize("keep", [2000, 0.5])
def test_truncated(tmp_path, smollm2_path, keep):
    data = smollm2_path.read_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    p = tmp_path / "cut.gguf"
    p.write_bytes(data[:n])
    with pytest.raises(GGUFError, match="truncated"):
        inspect_gguf(p)


def test_sha256_is_right_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_CACHE_DIR", str(tmp_path / "cache"))
    p = tmp_path / "f.bin"
    p.write_bytes(b"abc" * 1000)
    expected = hashlib.sha256(b"abc" * 1000).hexdigest()
    assert file_sha256(p) == expected
    assert expected in (tmp_path / "cache" / "sha256.json").read_text()
    # Same size and mtime: the cache answers, even though the bytes changed behind its back.
    st = p.stat()
    p.write_bytes(b"xyz" * 1000)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_sha256(p) == expected
    # A new mtime means a new hash.
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert file_sha256(p) == hashlib.sha256(b"xyz" * 1000).hexdigest()
