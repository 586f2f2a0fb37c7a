"""Manifests: every shipped one validates; bad ones fail naming file, field and expectation;
only the manifest in use is read; user directories add and override."""

from __future__ import annotations

import json

import pytest

import ai_lib_sync
from ai_lib_sync import AiClient, ConfigurationError, ManifestError
from ai_lib_sync import manifest as manifest_module
from ai_lib_sync.manifest import build_alias_index, builtin_dir, load_manifest, search_dirs

SHIPPED = [name for name in ai_lib_sync.providers()]


@pytest.mark.parametrize("provider", SHIPPED)
def test_every_shipped_manifest_validates_against_the_schema(provider):
    jsonschema = pytest.importorskip("jsonschema")
    manifest = load_manifest(provider, search_dirs())
    schema = json.loads((builtin_dir() / "manifest.schema.json").read_text())
    jsonschema.validate(json.loads(manifest.path.read_text()), schema)  # the reference validator agrees
    assert manifest.id == provider and manifest.path.name == f"{provider}.json"
    assert manifest.data.get("docs", "").startswith("https://"), "each manifest names its documentation"


def test_alias_index_is_current():
    shipped = json.loads((builtin_dir() / "_aliases.json").read_text())
    assert shipped == build_alias_index(), "run: python -m ai_lib_sync.manifest"


def _write(directory, name, data):
    path = directory / f"{name}.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


MINIMAL = {"id": "acme", "dialect": "openai_chat",
           "endpoint": {"base_url": "https://api.acme.test/v1", "chat_path": "/chat/completions"},
           "auth": {"type": "bearer", "env": ["ACME_API_KEY"]}}


@pytest.mark.parametrize("mutation, field, expected", [
    (lambda m: m["auth"].update(type="magic"), "auth.type", "one of 'bearer'"),
    (lambda m: m.pop("dialect"), "dialect", "required field"),
    (lambda m: m["endpoint"].update(chat_path="chat"), "endpoint.chat_path", "matching ^/"),
    (lambda m: m.update(models={"x": {"input_per_mtok": "cheap"}}), "models.x.input_per_mtok", "number"),
    (lambda m: m.update(errors={"rules": [{"status": 429, "kind": "slow"}]}), "errors.rules[0].kind", "one of"),
    (lambda m: m.update(colour="blue"), "colour", "no such field"),
    (lambda m: m.update(dialect="smoke_signals"), "dialect", "one of"),
])
def test_invalid_manifest_names_file_field_and_expectation(tmp_path, mutation, field, expected):
    data = json.loads(json.dumps(MINIMAL))
    mutation(data)
    path = _write(tmp_path, "acme", data)
    with pytest.raises(ManifestError) as caught:
        load_manifest("acme", search_dirs(tmp_path))
    message = str(caught.value)
    assert str(path) in message and repr(field) in message and expected in message
    assert caught.value.kind == "manifest"


def test_broken_json_and_id_mismatch(tmp_path):
    _write(tmp_path, "acme", "{not json")
    with pytest.raises(ManifestError, match="acme.json: not valid JSON"):
        load_manifest("acme", search_dirs(tmp_path))
    _write(tmp_path, "acme", {**MINIMAL, "id": "other"})
    with pytest.raises(ManifestError, match="field 'id': expected 'acme'"):
        load_manifest("acme", search_dirs(tmp_path))


def test_user_directory_adds_a_provider_and_extends_overrides_a_shipped_one(tmp_path, server):
    _write(tmp_path, "acme", MINIMAL)
    _write(tmp_path, "openai", {"id": "openai", "extends": "openai",
                                "endpoint": {"base_url": server.base_url + "/proxy"}})
    client = AiClient("openai/gpt-4o", api_key="k", manifests_dir=str(tmp_path))
    assert client.base_url == server.base_url + "/proxy"
    assert client.manifest.models["gpt-4o"]["input_per_mtok"] == 2.5  # inherited
    assert "acme" in ai_lib_sync.providers(str(tmp_path))
    assert AiClient("acme/m1", api_key="k", manifests_dir=str(tmp_path)).base_url == "https://api.acme.test/v1"


def test_manifests_directory_from_the_environment(tmp_path, monkeypatch):
    _write(tmp_path, "acme", {**MINIMAL, "aliases": ["roadrunner"]})
    monkeypatch.setenv("AI_LIB_SYNC_MANIFESTS", str(tmp_path))
    monkeypatch.setenv("ACME_API_KEY", "k")
    assert AiClient("roadrunner/m1").provider == "acme"


def test_only_the_manifest_in_use_is_read(monkeypatch):
    read = []
    original = manifest_module._read

    def spy(path):
        read.append(path.name)
        return original(path)

    monkeypatch.setattr(manifest_module, "_read", spy)
    AiClient("openai/gpt-4o", api_key="k")
    assert read == ["openai.json"]
    read.clear()
    AiClient("offline/echo").close()  # an alias: the small index, then the manifest
    assert read == ["_aliases.json", "mock.json"]


def test_unknown_provider_and_bad_model_id_are_configuration_errors(server):
    with pytest.raises(ConfigurationError, match="unknown provider 'nope'; known providers: .*openai"):
        AiClient("nope/model")
    with pytest.raises(ConfigurationError, match="must be 'provider/model'"):
        AiClient("gpt-4o")
    with pytest.raises(ConfigurationError, match="does not exist"):
        AiClient("openai/gpt-4o", api_key="k", manifests_dir="/definitely/not/here")
    assert server.requests == []


def test_model_part_may_contain_slashes_and_prices_give_cost():
    client = AiClient("openai/ft:gpt-4o/org", api_key="k")
    assert client.provider == "openai" and client.model == "ft:gpt-4o/org"
    assert client.manifest.cost_usd("gpt-4o", 1_000_000, 1_000_000) == 12.5
    assert client.manifest.cost_usd("gpt-4o-2024-08-06", 1000, 0) == 0.0025  # glob key
    assert client.manifest.cost_usd("unknown-model", 1000, 0) is None
