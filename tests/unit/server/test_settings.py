"""Settings: TOML file, flags overriding it, and clear rejection of unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import load_settings


def test_defaults():
    s = load_settings([])
    assert s.port == 50051 and s.default_model == "smollm2"
    assert {m.name for m in s.models} >= {"smollm2", "gpt2", "mistral"}
    assert s.resolved_database_url.startswith("sqlite:///") and s.resolved_database_url.endswith("llmserve.db")


def test_file_then_flags(tmp_path: Path):
    cfg = tmp_path / "llmserve.toml"
    cfg.write_text('port = 6000\ndata_dir = "/srv/x"\n[engine]\nmax_batch_rows = 8\n'
                   '[[models]]\nname = "local"\nsource = "huggingface"\npath = "/models/local"\n')
    s = load_settings(["--config", str(cfg), "--port", "7000", "--device", "cpu"])
    assert s.port == 7000  # flag beats file
    assert s.data_dir == Path("/srv/x") and s.engine.max_batch_rows == 8
    local = next(m for m in s.models if m.name == "local")
    assert local.path == "/models/local" and local.device == "cpu"
    assert all(m.device == "cpu" for m in s.models)


def test_unknown_key_is_rejected(tmp_path: Path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("prot = 1\n")
    with pytest.raises(ValueError, match="prot"):
        load_settings(["--config", str(cfg)])


def test_unknown_default_model_is_rejected():
    with pytest.raises(SystemExit):
        load_settings(["--default-model", "nope"])
