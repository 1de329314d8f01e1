"""agent-runtime.toml and the AGENT_RUNTIME_* environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime_facade import EnvironmentOverrideError, ProjectConfigError, find_config, load_config


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.path is None
    assert config.root == tmp_path.resolve()
    assert config.database.url is None
    assert config.database.synchronous == "FULL"
    assert (config.server.host, config.server.port, config.server.token) == ("127.0.0.1", 8321, None)
    assert config.runtime.approval_timeout_s == 300.0


def test_the_nearest_file_is_found_and_its_paths_are_relative_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "agent-runtime.toml").write_text(
        '[database]\nurl = "sqlite:///runs.db"\n[runtime]\nworkspace = "src"\npolicy = "safe"\n'
    )
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert find_config() == tmp_path / "agent-runtime.toml"
    config = load_config(environ={})
    assert config.root == tmp_path.resolve()
    assert config.database.url == "sqlite:///runs.db"
    assert config.resolve(config.runtime.workspace) == (tmp_path / "src").resolve()
    assert config.runtime.policy == "safe"


def test_environment_overrides_win(tmp_path: Path) -> None:
    file = tmp_path / "agent-runtime.toml"
    file.write_text("[server]\nport = 9000\n[telemetry]\notel = false\n")
    config = load_config(
        file,
        environ={
            "AGENT_RUNTIME_SERVER_PORT": "9100",
            "AGENT_RUNTIME_SERVER_TOKEN": "s3cret-token",
            "AGENT_RUNTIME_TELEMETRY_OTEL": "true",
            "AGENT_RUNTIME_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1/db",
            "AGENT_RUNTIME_SKIP_POSTGRES": "1",  # not a setting: ignored
        },
    )
    assert config.server.port == 9100
    assert config.server.token is not None
    assert config.server.token.get_secret_value() == "s3cret-token"
    assert "s3cret-token" not in repr(config)
    assert config.telemetry.otel is True
    assert config.database.url == "postgresql+psycopg://u@127.0.0.1/db"


def test_a_bad_override_names_its_variable() -> None:
    with pytest.raises(EnvironmentOverrideError) as error:
        load_config(search=False, environ={"AGENT_RUNTIME_SERVER_PORT": "eighty"})
    assert error.value.variable == "AGENT_RUNTIME_SERVER_PORT"
    assert str(error.value).startswith("AGENT_RUNTIME_SERVER_PORT: must be an integer")


def test_file_problems_carry_their_lines(tmp_path: Path) -> None:
    file = tmp_path / "agent-runtime.toml"
    file.write_text('[database]\nsynchronous = "SOMETIMES"\n\n[sever]\nport = 1\n')
    with pytest.raises(ProjectConfigError) as error:
        load_config(file, environ={})
    assert str(error.value).splitlines() == [
        f"{file}:2: database.synchronous: must be one of OFF, NORMAL, FULL, EXTRA",
        f"{file}:4: sever: unknown key",
    ]
    with pytest.raises(ProjectConfigError, match="cannot read it"):
        load_config(tmp_path / "absent.toml", environ={})
