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


def test_sampling_tables_change_one_kind_of_request(tmp_path: Path):
    cfg = tmp_path / "llmserve.toml"
    cfg.write_text("[sampling.chat]\ntemperature = 0.3\ntop_k = 20\n")
    s = load_settings(["--config", str(cfg)])
    assert (s.sampling.chat.temperature, s.sampling.chat.top_k) == (0.3, 20)
    assert s.sampling.completion.temperature == 0.7  # other kinds keep their defaults


def test_bad_sampling_settings_are_rejected(tmp_path: Path):
    cfg = tmp_path / "llmserve.toml"
    cfg.write_text("[sampling.chat]\ntop_p = 3\n")
    with pytest.raises(Exception, match="sampling.chat.top_p"):
        load_settings(["--config", str(cfg)])
    cfg.write_text("[sampling.poetry]\ntop_p = 0.5\n")
    with pytest.raises(ValueError, match="poetry"):
        load_settings(["--config", str(cfg)])


def test_environment_overrides_file_and_flags_override_environment(tmp_path: Path):
    cfg = tmp_path / "llmserve.toml"
    cfg.write_text('port = 6000\n[engine]\nmax_batch_rows = 8\n[auth]\nmode = "off"\n')
    env = {"LLMSERVE_PORT": "6100", "LLMSERVE_ENGINE__MAX_BATCH_ROWS": "12", "LLMSERVE_AUTH__MODE": "api_key",
           "LLMSERVE_AUTH__ADMIN_KEY": "s3cret-admin", "LLMSERVE_AUTH__QUOTAS__REQUESTS_PER_MINUTE": "30",
           "LLMSERVE_SAMPLING__CHAT__STOP_SEQUENCES": '["\\n\\n"]', "LLMSERVE_ENGINE__WEIGHT_FORMAT": "bf16",
           "LLMSERVE_LUT__STOP_AFTER_LABEL": "false", "OTHER_VAR": "ignored"}
    s = load_settings(["--config", str(cfg)], environ=env)
    assert s.port == 6100 and s.engine.max_batch_rows == 12 and s.engine.weight_format == "bf16"
    assert s.auth.mode == "api_key" and s.auth.admin_key.value == "s3cret-admin"
    assert s.auth.quotas.requests_per_minute == 30 and s.sampling.chat.stop_sequences == ("\n\n",)
    assert s.lut.stop_after_label is False
    assert load_settings(["--config", str(cfg), "--port", "7000"], environ=env).port == 7000


def test_secrets_never_show_in_the_settings_text():
    s = load_settings([], environ={"LLMSERVE_AUTH__MODE": "api_key", "LLMSERVE_AUTH__ADMIN_KEY": "s3cret-admin",
                                   "LLMSERVE_CHAT__OPENAI_API_KEY": "sk-live-123"})
    text = f"{s} {s!r} {s.auth} {s.chat}"
    assert "s3cret-admin" not in text and "sk-live-123" not in text
    assert s.chat.openai_api_key.value == "sk-live-123"


@pytest.mark.parametrize(("env", "named"), [
    ({"LLMSERVE_ENGINE__MAX_BATCH_ROWS": "many"}, "engine.max_batch_rows"),
    ({"LLMSERVE_AUTH__MODE": "maybe"}, "auth.mode"),
    ({"LLMSERVE_ENGINE__MAX_BATH_ROWS": "3"}, "engine.max_bath_rows"),
    ({"LLMSERVE_ENGINE__WEIGHT_FORMAT": "int4"}, "engine.weight_format"),
])
def test_bad_environment_values_name_the_setting(env, named):
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        load_settings([], environ=env)


def test_api_key_mode_needs_an_admin_key():
    with pytest.raises(SystemExit):
        load_settings([], environ={"LLMSERVE_AUTH__MODE": "api_key"})


def test_models_from_the_environment_as_json():
    env = {"LLMSERVE_MODELS": '[{"name": "local", "source": "huggingface", "path": "/m/local"}]'}
    s = load_settings([], environ=env)
    assert next(m for m in s.models if m.name == "local").path == "/m/local"
    assert {"smollm2", "gpt2"} <= {m.name for m in s.models}
