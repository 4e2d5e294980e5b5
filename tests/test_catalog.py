import shutil

import pytest

from playground.core.catalog import Catalog, CatalogError, guess_kind


def test_default_pair(catalog):
    assert catalog.resolve("base").id == "gemma3-270m"
    assert catalog.resolve("tuned").id == "smollm2-135m-instruct"
    assert catalog.resolve("base").kind == "base"
    assert catalog.resolve("tuned").kind == "tuned"
    assert catalog.resolve("base").n_ctx == 4096


def test_unknown_id_lists_known(catalog):
    with pytest.raises(CatalogError, match="unknown model 'gpt5'.*gemma3-270m"):
        catalog.resolve("gpt5")


def test_loose_gguf_shows_up(tmp_path, smollm2_path):
    shutil.copy(smollm2_path, tmp_path / "My-Model-Instruct.Q4.gguf")
    cat = Catalog.load(tmp_path)
    assert "my-model-instruct.q4" in cat.models
    spec = cat.models["my-model-instruct.q4"]
    assert spec.kind == "tuned"
    assert spec.inspect().architecture == "llama"


def test_toml_errors_are_clear(tmp_path):
    (tmp_path / "models.toml").write_text("[[model]]\nid = 'x'\nkind = 'weird'\nfile = 'x.gguf'\n")
    with pytest.raises(CatalogError, match="kind must be 'base' or 'tuned'"):
        Catalog.load(tmp_path)
    (tmp_path / "models.toml").write_text("[[model]\nid=")
    with pytest.raises(CatalogError, match="models.toml"):
        Catalog.load(tmp_path)
    (tmp_path / "models.toml").write_text(
        "[[model]]\nid = 'x'\nkind = 'base'\nfile = 'x.gguf'\nn_ctx = -3\n"
    )
    with pytest.raises(CatalogError, match="n_ctx must be an integer"):
        Catalog.load(tmp_path)


def test_path_override(catalog, smollm2_path):
    cat = catalog.with_override("base", str(smollm2_path))
    assert cat.resolve("base").path() == smollm2_path.resolve()
    assert cat.resolve("base").kind == "base"


def test_guess_kind():
    assert guess_kind("SmolLM2-135M-Instruct") == "tuned"
    assert guess_kind("gemma-3-270m-it-Q4") == "tuned"
    assert guess_kind("gemma-3-270m") == "base"
