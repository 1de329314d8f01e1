"""Policy files: TOML and YAML load to equal engines; every problem is reported at once, with its line."""

from __future__ import annotations

import pickle
import re
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from runtime_control.exceptions import ConfigProblem, PolicyFileError
from runtime_control.policy import (
    SECURITY_PRESETS,
    PolicyFile,
    RulePolicyEngine,
    SafetyVerdict,
    load_policy,
    parse_policy,
)
from runtime_core import (
    ArgCondition,
    ConfigurationError,
    PolicyAction,
    PolicyContext,
    PolicyOutcome,
    PolicyRule,
    ToolCall,
    ToolSpec,
)

GOOD_TOML = r"""
# A policy for a coding agent.
preset = "power"
default_action = "allow"
allowed_tools = ["file:*", "shell:run", "web:*", "demo:*"]
denied_tools = ["web:upload"]
requires_approval = ["file:write"]

[permissions]
bash = "sandbox"

[sandbox]
allowed_hosts = ["pypi.org"]

[limits]
max_concurrent_calls = 2

[[rules]]
id = "no-force-push"
action = "deny"
tools = ["shell:run"]
priority = 100
reason = "force pushes rewrite shared history"
conditions = [{ path = "command", op = "matches", value = 'git\s+push\s+.*--force' }]

[[rules]]
id = "big-writes"
action = "ask"
tools = ["file:write"]
priority = 10

[[rules.conditions]]
path = "options.size"
op = "gt"
value = 1_000_000

[[rules]]
id = "reviewers-read-only"
action = "deny"
tools = ["file:write", "file:edit", "shell:*"]
role = "reviewer"

[[rules]]
id = "no-deep-network"
action = "deny"
tools = ["web:*"]
min_depth = 2
"""

GOOD_YAML = r"""
# A policy for a coding agent.
preset: power
default_action: allow
allowed_tools: ["file:*", "shell:run", "web:*", "demo:*"]
denied_tools: [web:upload]
requires_approval:
  - file:write
permissions:
  bash: sandbox
sandbox:
  allowed_hosts: [pypi.org]
limits:
  max_concurrent_calls: 2
rules:
  - id: no-force-push
    action: deny
    tools: [shell:run]
    priority: 100
    reason: force pushes rewrite shared history
    conditions:
      - {path: command, op: matches, value: 'git\s+push\s+.*--force'}
  - id: big-writes
    action: ask
    tools: [file:write]
    priority: 10
    conditions:
      - path: options.size
        op: gt
        value: 1000000
  - id: reviewers-read-only
    action: deny
    tools: [file:write, file:edit, "shell:*"]
    role: reviewer
  - id: no-deep-network
    action: deny
    tools: ["web:*"]
    min_depth: 2
"""


def errors(text: str, syntax: str = "toml", path: str = "policy.toml") -> list[str]:
    with pytest.raises(PolicyFileError) as raised:
        parse_policy(text, format=syntax, path=path)  # type: ignore[arg-type]
    assert str(raised.value) == "\n".join(str(problem) for problem in raised.value.problems)
    return str(raised.value).splitlines()


# -- good files ------------------------------------------------------------------------------------------------


def test_toml_and_yaml_load_to_equal_policies_and_engines() -> None:
    from_toml = parse_policy(GOOD_TOML, format="toml")
    from_yaml = parse_policy(GOOD_YAML, format="yaml")
    assert from_toml == from_yaml
    assert from_toml.build_engine() == from_yaml.build_engine()
    assert from_toml.build_engine() != parse_policy('preset = "power"', format="toml").build_engine()


def test_a_loaded_policy_is_what_the_file_says() -> None:
    policy = parse_policy(GOOD_TOML, format="toml")
    assert [rule.id for rule in policy.rules] == [
        "no-force-push",
        "big-writes",
        "reviewers-read-only",
        "no-deep-network",
    ]
    assert policy.rules[1].conditions == (ArgCondition(path="options.size", op="gt", value=1_000_000),)
    security = policy.security_policy()
    power = SECURITY_PRESETS["power"]
    # Only the keys the file sets replace the preset's.
    assert security.permissions == power.permissions.model_copy(update={"bash": "sandbox"})
    assert security.sandbox == power.sandbox.model_copy(update={"allowed_hosts": ("pypi.org",)})
    assert security.limits == power.limits.model_copy(update={"max_concurrent_calls": 2})


def test_the_engine_of_a_file_decides_as_written() -> None:
    engine = parse_policy(GOOD_TOML, format="toml").build_engine()

    def decide(name: str, role: str | None = None, depth: int = 0, **arguments: object) -> tuple[str, str | None]:
        context = PolicyContext(run_id="run", agent_id="agent", role=role, depth=depth)
        decision = engine.evaluate(
            ToolCall(id="c", name=name, arguments=arguments), ToolSpec(name=name, description=name), context
        )
        return decision.policy_decision.value, decision.policy_rule_id

    assert decide("shell:run", command="git push origin main --force") == ("deny", "no-force-push")
    assert decide("shell:run", command="git status") == ("allow", "builtin:default")
    assert decide("file:write", options={"size": 2_000_000}) == ("allow_with_confirm", "big-writes")
    assert decide("file:write", role="reviewer") == ("deny", "reviewers-read-only")
    assert decide("file:write") == ("allow_with_confirm", "builtin:requires_approval")
    assert decide("web:fetch", depth=2) == ("deny", "no-deep-network")
    assert decide("web:upload") == ("deny", "builtin:denylist")
    assert decide("code:run") == ("deny", "builtin:allowlist")


def test_build_engine_takes_safety_checkers() -> None:
    class Veto:
        name = "veto"

        def check(self, call: ToolCall, spec: ToolSpec, context: PolicyContext) -> SafetyVerdict:
            return SafetyVerdict(PolicyAction.DENY, "no")

    engine = PolicyFile().build_engine(safety_checkers=[Veto()])
    decision = engine.evaluate(
        ToolCall(id="c", name="demo:echo"),
        ToolSpec(name="demo:echo", description="e"),
        PolicyContext(run_id="r", agent_id="a"),
    )
    assert (decision.policy_decision, decision.policy_rule_id) == (PolicyOutcome.DENY, "safety:veto")


def test_the_documented_toml_and_yaml_examples_load_and_agree() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "governance.md").read_text()
    (toml,) = re.findall(r"```toml\n(.*?)```", page, re.DOTALL)
    (yaml,) = re.findall(r"```yaml\n(.*?)```", page, re.DOTALL)
    policy = parse_policy(toml, format="toml", path="docs/governance.md")
    assert policy == parse_policy(yaml, format="yaml", path="docs/governance.md")
    assert [rule.id for rule in policy.rules] == ["no-force-push", "big-writes", "reviewers-read-only"]


@pytest.mark.parametrize(("text", "syntax"), [("", "toml"), ("", "yaml"), ("# nothing\n", "yaml")])
def test_an_empty_file_is_the_default_policy(text: str, syntax: str) -> None:
    policy = parse_policy(text, format=syntax)  # type: ignore[arg-type]
    assert policy == PolicyFile()
    assert policy.build_engine() == RulePolicyEngine()


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".yml", ".TOML"])
def test_load_policy_picks_the_syntax_from_the_suffix(tmp_path: Path, suffix: str) -> None:
    file = tmp_path / f"policy{suffix}"
    file.write_text(GOOD_TOML if suffix.lower() == ".toml" else GOOD_YAML)
    assert load_policy(file) == parse_policy(GOOD_TOML, format="toml")


def test_load_policy_rejects_other_suffixes(tmp_path: Path) -> None:
    file = tmp_path / "policy.json"
    file.write_text("{}")
    with pytest.raises(PolicyFileError, match=r"policy.json: policy files must end in \.toml, \.yaml or \.yml"):
        load_policy(file)


def test_line_numbers_in_errors_of_a_loaded_file_name_the_file(tmp_path: Path) -> None:
    file = tmp_path / "bad.toml"
    file.write_text('preset = "balanced"\ndefault_action = "maybe"\n')
    with pytest.raises(PolicyFileError) as raised:
        load_policy(file)
    assert str(raised.value) == f"{file}:2: default_action: must be one of allow, deny, ask"
    assert raised.value.path == str(file)


# -- errors, with line numbers ---------------------------------------------------------------------------------------


def test_the_documented_error_format() -> None:
    text = "\n".join(
        [
            'preset = "balanced"',  # 1
            "",
            "[[rules]]",  # 3
            'id = "a"',
            'action = "deny"',
            "",
            "[[rules]]",  # 7
            'id = "b"',
            'action = "ask"',
            "",
            "[[rules]]",  # 11
            'action = "forbid"',  # 12
            'id = "c"',
        ]
    )
    assert errors(text) == ["policy.toml:12: rules[2].action: must be one of allow, deny, ask"]


TOML_CASES = [
    # syntax errors carry the parser's line
    ('preset = "balanced"\nrules = [\n  {id = }\n]\n', "policy.toml:3: invalid value"),
    ("a = 1\na = 2\n", "policy.toml:2: cannot overwrite a value"),
    # shape errors
    ('preset = "balanced"\nmode = "fast"\n', "policy.toml:2: mode: unknown key"),
    ('allowed_tools = "file:*"\n', "policy.toml:1: allowed_tools: must be a list"),
    ('requires_approval = ["file:*", ""]\n', "policy.toml:1: requires_approval[1]: must not be empty"),
    (
        'preset = "yolo"\n',
        "policy.toml:1: preset: unknown preset 'yolo'; valid presets: safe, balanced, power, developer",
    ),
    (
        '\n[permissions]\nbash = "always"\n',
        "policy.toml:3: permissions.bash: must be one of disabled, confirm, sandbox, full",
    ),
    ("[limits]\nmax_concurrent_calls = 0\n", "policy.toml:2: limits.max_concurrent_calls: must be greater than 0"),
    ('[[rules]]\nid = "r"\n', "policy.toml:1: rules[0].action: is required"),
    (
        '[[rules]]\nid = "r"\naction = "deny"\npriority = "high"\n',
        "policy.toml:4: rules[0].priority: must be an integer",
    ),
    ('[[rules]]\nid = "r"\naction = "deny"\ntools = "shell:run"\n', "policy.toml:4: rules[0].tools: must be a list"),
    # rule checks
    (
        '[[rules]]\nid = "r"\naction = "deny"\n[[rules.conditions]]\npath = "command"\nop = "matches"\nvalue = "("\n',
        "policy.toml:7: rules[0].conditions[0].value: invalid regular expression '(': "
        "missing ), unterminated subpattern at position 0",
    ),
    (
        '[[rules]]\nid = "r"\naction = "deny"\nconditions = [\n  { path = "n", op = "lt", value = 1 },\n'
        '  { path = "n", op = "gt", value = "2" },\n]\n',
        "policy.toml:6: rules[0].conditions[1].value: the value of a 'gt' condition must be a number, not '2'",
    ),
    (
        '[[rules]]\nid = "r"\naction = "deny"\n\n[[rules]]\nid = "r"\naction = "allow"\n',
        "policy.toml:6: rules[1].id: duplicate rule id 'r' (first used by rules[0])",
    ),
    (
        '[[rules]]\nid = "r"\naction = "deny"\nmin_depth = 3\nmax_depth = 1\n',
        "policy.toml:4: rules[0].min_depth: min_depth (3) is greater than max_depth (1)",
    ),
    (
        '[[rules]]\nid = "builtin:mine"\naction = "deny"\n',
        "policy.toml:2: rules[0].id: rule ids may not start with 'builtin:', 'permission:', 'safety:' "
        "(reserved for built-in steps)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), TOML_CASES)
def test_each_toml_error_kind_has_a_line(text: str, expected: str) -> None:
    assert errors(text) == [expected]


YAML_CASES = [
    (
        "preset: balanced\nrules: [\n",
        "policy.yaml:3: while parsing a flow node: expected the node content, but found '<stream end>'",
    ),
    ("- just\n- a list\n", "policy.yaml:1: a policy must be a table (mapping) of settings"),
    ("preset: balanced\npreset: safe\n", "policy.yaml:2: preset: duplicate key (first set on line 1)"),
    ("preset: balanced\nmode: fast\n", "policy.yaml:2: mode: unknown key"),
    (
        "rules:\n  - id: r\n    action: deny\n    conditions:\n"
        "      - path: command\n        op: resembles\n        value: x\n",
        "policy.yaml:6: rules[0].conditions[0].op: must be one of equals, contains, matches, lt, gt",
    ),
    ("rules:\n  - id: r\n    tools: [shell:run]\n", "policy.yaml:2: rules[0].action: is required"),
    (
        "rules:\n  - id: r\n    action: deny\n    conditions:\n      - {path: a, op: matches, value: '[z-a]'}\n",
        "policy.yaml:5: rules[0].conditions[0].value: invalid regular expression '[z-a]': bad character range z-a at "
        "position 1",
    ),
]


@pytest.mark.parametrize(("text", "expected"), YAML_CASES)
def test_each_yaml_error_kind_has_a_line(text: str, expected: str) -> None:
    (line,) = errors(text, "yaml", "policy.yaml")
    assert line.startswith(expected)


def test_many_errors_are_reported_at_once_in_line_order() -> None:
    text = "\n".join(
        [
            'preset = "medium"',  # 1
            'default_action = "perhaps"',  # 2
            "",
            "[permissions]",  # 4
            'bash = "root"',  # 5
            "",
            "[[rules]]",  # 7
            'id = "same"',  # 8
            'action = "deny"',
            'conditions = [{ path = "x", op = "matches", value = "[" }]',  # 10
            "",
            "[[rules]]",  # 12
            'id = "same"',  # 13
            'action = "allow"',
            "",
            "[[rules]]",  # 16
            'id = "third"',
            'actoin = "deny"',  # 18
        ]
    )
    with pytest.raises(PolicyFileError) as raised:
        parse_policy(text, format="toml", path="p.toml")
    assert [(problem.line, problem.location) for problem in raised.value.problems] == [
        (1, "preset"),
        (2, "default_action"),
        (5, "permissions.bash"),
        (10, "rules[0].conditions[0].value"),
        (13, "rules[1].id"),
        (16, "rules[2].action"),
        (18, "rules[2].actoin"),
    ]
    assert raised.value.setting == "preset"


def test_many_yaml_errors_are_reported_at_once() -> None:
    text = "preset: medium\nrules:\n  - id: a\n    action: nope\n  - id: a\n    action: deny\n    priority: x\n"
    with pytest.raises(PolicyFileError) as raised:
        parse_policy(text, format="yaml", path="p.yaml")
    assert [(problem.line, problem.location) for problem in raised.value.problems] == [
        (1, "preset"),
        (4, "rules[0].action"),
        (7, "rules[1].priority"),
    ]


def test_policy_file_error_is_a_picklable_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_policy('default_action = "x"', format="toml", path="p.toml")
    error = raised.value
    assert isinstance(error, PolicyFileError)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.path, copy.problems, copy.setting) == (
        str(error),
        "p.toml",
        error.problems,
        "default_action",
    )
    assert error.problems == (ConfigProblem("p.toml", 1, "default_action", "must be one of allow, deny, ask"),)
    assert str(ConfigProblem("p.toml", None, "", "unreadable")) == "p.toml: unreadable"


# -- the TOML scanner is not fooled by strings, comments or layout --------------------------------------------------


def test_toml_lines_survive_multiline_strings_comments_and_layout() -> None:
    text = "\n".join(
        [
            "# [[rules]] in a comment does not count",  # 1
            'preset = "balanced" # trailing comment',  # 2
            'description_is_unknown = """',  # 3
            "[[rules]]",
            'id = "fake"',
            '"""',
            "[[rules]]",  # 7
            "id = 'first'",  # 8
            "action = 'deny'",
            "reason = '''",  # 10
            "action = 'nope'",
            "'''",
            "conditions = [",  # 13
            "  { path = 'a', op = 'equals', value = 1 },",  # 14
            "  # a comment inside the array",
            "  { path = 'b', op = 'lt', value = 'x' },",  # 16
            "]",
            "",
            "  [[ rules ]]  # spaced header",  # 19
            '  id = "second"',
            '  "action" = "nope"',  # 21
            "rules_extra.nested = 1",  # 22
        ]
    )
    with pytest.raises(PolicyFileError) as raised:
        parse_policy(text, format="toml", path="p.toml")
    assert [(problem.line, problem.location) for problem in raised.value.problems] == [
        (3, "description_is_unknown"),
        (16, "rules[0].conditions[1].value"),
        (21, "rules[1].action"),
        (22, "rules[1].rules_extra"),
    ]


def test_a_programmatic_policy_file_is_validated_too() -> None:
    rule = PolicyRule(id="r", action="deny", conditions=(ArgCondition(path="a", op="matches", value="("),))
    with pytest.raises(ValidationError, match="invalid regular expression"):
        PolicyFile(rules=(rule,))
    with pytest.raises(ValidationError, match="valid presets"):
        PolicyFile(preset="ultra")


def test_yaml_without_pyyaml_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ImportError, match=r"runtime-control\[yaml\]"):
        parse_policy("preset: safe", format="yaml")
    assert parse_policy('preset = "safe"', format="toml").preset == "safe"
