"""Agent files: the schema, path resolution, policies, and problems reported at their lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime_control import PolicyFileError
from runtime_core.agents import ExecutionMode
from runtime_facade import AgentFileError, load_agent, parse_agent

SCENARIO = 'model = "m"\n[[steps]]\ntext = "hi"\n'


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def problems(error: pytest.ExceptionInfo[AgentFileError]) -> list[str]:
    return str(error.value).splitlines()


def test_a_full_agent_file_resolves_paths_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    write(tmp_path, "scenario.toml", SCENARIO)
    write(tmp_path, "prompt.md", "Be brief.")
    write(tmp_path, "policy.toml", 'preset = "safe"\ndenied_tools = ["shell:*"]\n')
    agent = load_agent(
        write(
            tmp_path,
            "agent.toml",
            """
name = "fixer"
instructions_file = "prompt.md"
tools = ["file:*"]
mode = "interactive"
workspace = "ws"
policy = "policy.toml"
role = "developer"

[model]
name = "scripted:demo"
scenario = "scenario.toml"

[limits]
max_turns = 7

[budget]
max_tool_calls = 20

[metadata]
team = "core"
""",
        )
    )
    assert agent.spec.name == "fixer"
    assert agent.spec.instructions == "Be brief."
    assert agent.spec.mode is ExecutionMode.INTERACTIVE
    assert agent.spec.limits.max_turns == 7
    assert agent.spec.budget is not None
    assert agent.spec.budget.max_tool_calls == 20
    assert agent.spec.metadata == {"team": "core"}
    assert agent.workspace == (tmp_path / "ws").resolve()
    assert agent.model.scenario == str((tmp_path / "scenario.toml").resolve())
    assert agent.policy is not None
    assert agent.policy.name == str((tmp_path / "policy.toml").resolve())
    assert agent.policy.policy.preset == "safe"
    assert agent.policy.policy.denied_tools == ("shell:*",)
    assert agent.spec.policy == agent.policy.name  # recorded in run.created
    assert agent.path == (tmp_path / "agent.toml").resolve()


def test_model_shorthand_and_environment_endpoint() -> None:
    agent = parse_agent('name = "a"\nmodel = "openai:gpt-4.1-mini"\npolicy = "power"\n')
    assert agent.model.name == "openai:gpt-4.1-mini"
    assert agent.model.endpoint({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}) == "http://127.0.0.1:9/v1"
    assert agent.model.api_key({"OPENAI_API_KEY": "k"}) == "k"
    assert agent.model.api_key({}) is None
    assert agent.policy is not None
    assert agent.policy.name == "power"


def test_an_inline_policy_table() -> None:
    agent = parse_agent(
        'name = "a"\nmodel = "anthropic:claude"\n[policy]\ndefault_action = "deny"\nallowed_tools = ["file:read"]\n'
    )
    assert agent.policy is not None
    assert agent.policy.name == "inline"
    assert agent.policy.policy.default_action.value == "deny"


def test_every_problem_is_reported_at_its_line() -> None:
    text = 'name = "x"\nmodel = "scripted:demo"\n\n[limits]\nmax_turns = 0\ncolour = "red"\n'
    with pytest.raises(AgentFileError) as error:
        parse_agent(text, path="agent.toml")
    assert problems(error) == [
        'agent.toml:2: model: a scripted model needs a scenario file: scenario = "scenario.toml"',
        "agent.toml:5: limits.max_turns: must be greater than 0",
        "agent.toml:6: limits.colour: unknown key",
    ]
    assert [problem.line for problem in error.value.problems] == [2, 5, 6]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('name = "x"\nmodel = "gpt4"\n', "agent.toml:2: model.name: must be <provider>:<model>"),
        ('name = "x"\n[model]\nname = "local:llama"\n', "agent.toml:3: model.name: must be <provider>:<model>"),
        ('name = "x"\nmodel = "openai:m"\npolicy = "strict"\n', "agent.toml:3: policy: 'strict' is neither a preset"),
        ('name = "x"\nmodel = "openai:m"\n[policy]\nrules = 3\n', "agent.toml:4: policy.rules: must be a list"),
        ('model = "openai:m"\n', "agent.toml:1: name: is required"),
        ('name = "x"\nmodel = \n', "agent.toml:2: invalid value"),
        (
            'name = "x"\nmodel = "openai:m"\n[recovery]\ngrace_turns = 60\n',
            "agent.toml:4: recovery.grace_turns: must be",
        ),
        ('name = "x"\nmodel = "openai:m"\nscenario = "s.toml"\n', "agent.toml:3: scenario: unknown key"),
    ],
)
def test_bad_agent_files_name_the_line_and_setting(text: str, expected: str) -> None:
    with pytest.raises(AgentFileError) as error:
        parse_agent(text, path="agent.toml")
    assert str(error.value).startswith(expected), str(error.value)


def test_missing_files_are_problems_of_the_agent_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "agent.toml",
        'name = "x"\ninstructions_file = "nope.md"\nworkspace = "nowhere"\n[model]\nname = "scripted:m"\n'
        'scenario = "missing.toml"\n',
    )
    with pytest.raises(AgentFileError) as error:
        load_agent(path)
    lines = problems(error)
    assert [line.split(": ")[0] for line in lines] == [f"{path}:2", f"{path}:3", f"{path}:6"]
    assert "cannot read 'nope.md'" in lines[0]
    assert "no such directory" in lines[1]
    assert "no such file" in lines[2]
    with pytest.raises(AgentFileError, match="cannot read it"):
        load_agent(tmp_path / "absent.toml")


def test_a_confined_agent_text_names_no_path_outside_its_directory(tmp_path: Path) -> None:
    # Agent text from a client (the HTTP API) may not reach the server's other files: each path leaving the
    # directory is a problem at its line, and nothing outside is read.
    agents, secret = tmp_path / "agents", tmp_path / "secret"
    agents.mkdir()
    secret.mkdir()
    write(agents, "prompt.md", "Be brief.")
    write(secret, "prompt.md", "the server's secret")
    write(secret, "scenario.toml", SCENARIO)
    write(secret, "policy.toml", 'preset = "safe"\n')
    text = (
        'name = "x"\ninstructions_file = "../secret/prompt.md"\nworkspace = "/"\npolicy = "../secret/policy.toml"\n'
        f'[model]\nname = "scripted:m"\nscenario = "{secret / "scenario.toml"}"\n'
    )
    with pytest.raises(AgentFileError) as error:
        parse_agent(text, path="agent.toml", base_dir=agents, confine=True)
    lines = problems(error)
    assert [line.split(": ")[0] for line in lines] == ["agent.toml:2", "agent.toml:3", "agent.toml:4", "agent.toml:7"]
    assert all(line.endswith("which it must stay inside") for line in lines), lines
    assert "the server's secret" not in str(error.value)
    inside = parse_agent(text.replace("../secret/prompt.md", "prompt.md"), base_dir=agents)
    assert inside.spec.instructions == "Be brief."
    nul = 'name = "x"\nmodel = "openai:m"\nworkspace = "a\\u0000b"\n'
    for confine in (True, False):  # a path with a NUL names nothing, confined or not
        with pytest.raises(AgentFileError, match=r"agent.toml:3: workspace: 'a\\x00b' is not a path"):
            parse_agent(nul, path="agent.toml", base_dir=agents, confine=confine)
    operators = parse_agent(text, base_dir=agents)  # an operator's agent file: its paths go anywhere
    assert operators.spec.instructions == "the server's secret"
    assert operators.workspace == Path("/")


def test_a_policy_file_reports_its_own_problems(tmp_path: Path) -> None:
    write(tmp_path, "policy.toml", 'preset = "medium"\n')
    write(tmp_path, "missing.toml", "")
    with pytest.raises(PolicyFileError) as error:
        load_agent(write(tmp_path, "a.toml", 'name = "x"\nmodel = "openai:m"\npolicy = "policy.toml"\n'))
    assert str(error.value).startswith(f"{(tmp_path / 'policy.toml').resolve()}:1: preset: unknown preset 'medium'")
    with pytest.raises(AgentFileError, match=r"a\.toml:3: policy: no such policy file: 'gone\.toml'"):
        load_agent(write(tmp_path, "a.toml", 'name = "x"\nmodel = "openai:m"\npolicy = "gone.toml"\n'))
