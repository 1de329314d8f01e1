"""Secret redaction: default patterns, known values, nested values and models, no false positives."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

from runtime_control.redaction import (
    DEFAULT_PATTERNS,
    MIN_SECRET_LENGTH,
    Redactor,
    SecretPattern,
    redaction_marker,
)
from runtime_core.events import Event, EventDraft, ToolCalledPayload
from runtime_core.tools import ToolCall

# Fake credentials in the real formats, assembled so that secret scanners do not flag this file.
ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
OPENAI = "sk-" + "proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6h"
OPENAI_LEGACY = "sk-" + ALNUM[:48]
ANTHROPIC = "sk-" + "ant-api03-" + ALNUM[10:50] + "-xyzAA"
GOOGLE = "AI" + "za" + "SyD4x9Kq2mN7pR1tV5wY8zB3cF6hJ0kL2nQ"
GOOGLE_OAUTH = "ya" + "29." + "a0AfH6SMB" + ALNUM[:30]
GOOGLE_CLIENT_SECRET = "GOC" + "SPX-" + ALNUM[30:58]
AWS = "AK" + "IA" + "IOSFODNN7EXAMPLE"
GITHUB = "gh" + "p_" + ALNUM[:36]
GITHUB_PAT = "github" + "_pat_" + "11ABCDEFG0" + ALNUM[:40]
SLACK = "xo" + "xb-" + "1234567890-1234567890123-" + ALNUM[36:60]
SLACK_APP = "xa" + "pp-" + "1-A0123456789-" + ALNUM[:20]
SLACK_WEBHOOK = "https://hooks.slack.com/services/" + "T00000000/B00000000/" + "X" * 24
STRIPE = "sk" + "_live_" + ALNUM[:24]
STRIPE_RESTRICTED = "rk" + "_test_" + ALNUM[24:48]
HUGGINGFACE = "h" + "f_" + ALNUM[26:60]
JWT = "eyJ" + "hbGciOiJIUzI1NiJ9.eyJ" + "zdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PRIVATE_KEY = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabcdef==\n-----END RSA PRIVATE KEY-----"

PATTERN_CASES = [
    ("openai_key", f"key: {OPENAI}.", OPENAI),
    ("openai_key", f"OPENAI={OPENAI_LEGACY}"[7:], OPENAI_LEGACY),
    ("anthropic_key", f"x-api {ANTHROPIC} end", ANTHROPIC),
    ("google_api_key", f"?key={GOOGLE}&alt=json"[5:], GOOGLE),
    ("google_oauth", f"access {GOOGLE_OAUTH}", GOOGLE_OAUTH),
    ("google_oauth", f"client {GOOGLE_CLIENT_SECRET}", GOOGLE_CLIENT_SECRET),
    ("aws_access_key", f"aws id {AWS} ok", AWS),
    ("github_token", f"remote https://{GITHUB}@github.com/org/repo", GITHUB),
    ("github_token", f"pat {GITHUB_PAT}", GITHUB_PAT),
    ("slack_token", f"slack {SLACK}", SLACK),
    ("slack_token", f"app {SLACK_APP}", SLACK_APP),
    ("slack_webhook", f"post to {SLACK_WEBHOOK} now", SLACK_WEBHOOK),
    ("stripe_key", f"stripe {STRIPE}", STRIPE),
    ("stripe_key", f"stripe {STRIPE_RESTRICTED}", STRIPE_RESTRICTED),
    ("huggingface_token", f"hub {HUGGINGFACE}", HUGGINGFACE),
    ("jwt", f"cookie session={JWT}"[15:], JWT),
    ("private_key", f"key file:\n{PRIVATE_KEY}\nend", "MIIEpAIBAAKCAQEA7"),
    ("private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA (truncated", "b3BlbnNzaC1"),
    ("bearer_token", "Authorization: Bearer abc123def456ghi789", "abc123def456ghi789"),
    ("bearer_token", "curl -H 'authorization: bearer ZXlKaGJHY2lPaUpJVXpJMU5pSjku'", "ZXlKaGJHY2lPaUpJVXpJMU5pSjku"),
    ("basic_auth", "Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("url_password", "DATABASE_URL=postgresql://app:s3cr3t-pass@db:5432/app"[13:], "s3cr3t-pass"),
    ("secret_assignment", "connect --password=hunter2! --host db", "hunter2!"),
    ("secret_assignment", 'config = {"api_key": "abc 123 def", "max_tokens": 4096}', "abc 123 def"),
    ("secret_assignment", "db:\n  DB_PASSWORD: correcthorse\n  name: app", "correcthorse"),
    ("secret_assignment", "export GITHUB_TOKEN=tok3nvalue", "tok3nvalue"),
    ("secret_assignment", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY", "wJalrXUtnFEMI"),
    ("secret_assignment", '{"accessToken":"a1b2c3d4","clientSecret":"s3cr3t"}', "a1b2c3d4"),
    ("secret_assignment", "X-Auth-Token: 9f8e7d6c5b4a", "9f8e7d6c5b4a"),
    ("secret_assignment", "PASSPHRASE='open sesame'", "open sesame"),
]


@pytest.mark.parametrize(
    ("kind", "text", "secret"), PATTERN_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(PATTERN_CASES)]
)
def test_default_patterns_find_their_secret(kind: str, text: str, secret: str) -> None:
    assert secret in text
    redacted = Redactor().redact_text(text)
    assert secret not in redacted
    assert redaction_marker(kind) in redacted
    assert Redactor().redact_text(redacted) is redacted  # idempotent: a second pass finds nothing


def test_every_default_kind_has_a_case() -> None:
    assert {pattern.kind for pattern in DEFAULT_PATTERNS} == {kind for kind, _, _ in PATTERN_CASES}


def test_replacements_keep_keys_quotes_and_surrounding_text() -> None:
    redactor = Redactor()
    assert redactor.redact_text("Authorization: Bearer abc123def456") == "Authorization: Bearer [REDACTED:bearer_token]"
    assert redactor.redact_text('{"password": "p4ss word"}') == '{"password": "[REDACTED:secret_assignment]"}'
    assert redactor.redact_text("token='abc123'") == "token='[REDACTED:secret_assignment]'"
    assert redactor.redact_text("https://u:pw12@h/x") == "https://u:[REDACTED:url_password]@h/x"
    assert redactor.redact_text(f"a {AWS} b {GITHUB} c") == "a [REDACTED:aws_access_key] b [REDACTED:github_token] c"


@pytest.mark.parametrize(
    "text",
    [
        "commit 4f5e8a0c9b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f on main",
        "request 123e4567-e89b-12d3-a456-426614174000 accepted",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "payload SGVsbG8sIHdvcmxkIQ== decoded",
        "The bearer bond was kept secret; tokens were counted (max_tokens=4096, token_type=bearer).",
        "def login(password: str, token: Optional[str] = None) -> bool:",
        "api_key = os.environ['OPENAI_API_KEY']; token = get_token()",
        "password=${DB_PASSWORD} and password_hash=abc123 and passwords: 3",
        "see https://example.com/path?q=1 and git@github.com:org/repo.git and http://user@host/",
        "/home/user/.ssh/id_rsa.pub and sk-learn-style-identifiers-without-digits",
        "The API key is stored in the vault. Use `ghp_` tokens, not AKIA-prefixed ids.",
        "Use Bearer authentication with a JWT (eyJ...) in the header.",
        "",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor().redact_text(text) is text


def test_known_secret_values_are_redacted_wherever_they_appear() -> None:
    redactor = Redactor(secrets=["correct-horse-battery", "tiny", "my secret phrase"])
    text = "pw correct-horse-battery, phrase=my secret phrase; tiny stays"
    assert redactor.redact_text(text) == "pw [REDACTED:secret], phrase=[REDACTED:secret]; tiny stays"
    assert redactor.redact_text("xcorrect-horse-batteryx") == "x[REDACTED:secret]x"  # no word boundary needed
    assert MIN_SECRET_LENGTH == 8


def test_known_values_win_over_patterns_and_longer_values_win() -> None:
    redactor = Redactor(secrets=[GITHUB, "abcdefgh", "abcdefghij"])
    assert redactor.redact_text(f"t {GITHUB}") == "t [REDACTED:secret]"
    assert redactor.redact_text("abcdefghij!") == "[REDACTED:secret]!"


def test_environment_secrets_are_known_values(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {
        "OPENAI_API_KEY": "env-openai-value-1",
        "GITHUB_TOKEN": "env-github-value-2",
        "db_password": "env-db-value-3",
        "CLIENT_SECRET": "env-secret-value-4",
        "SHORT_KEY": "abc",
        "HOME": "/home/agent/workspace",
    }
    redactor = Redactor.from_env(environ, secrets=["from-config-value"])
    text = " ".join([*environ.values(), "from-config-value"])
    secret = "[REDACTED:secret]"
    assert redactor.redact_text(text) == f"{secret} {secret} {secret} {secret} abc /home/agent/workspace {secret}"
    monkeypatch.setenv("AGENT_RUNTIME_TEST_TOKEN", "process-env-token-42")
    assert Redactor.from_env().redact_text("x process-env-token-42") == "x [REDACTED:secret]"


def test_nested_json_like_values() -> None:
    redactor = Redactor()
    value: dict[str, Any] = {
        "headers": {"Authorization": "Bearer abc123def456"},
        "args": ["--token=abc123456", ("plain", {AWS})],
        "count": 3,
        "when": datetime(2026, 1, 1, tzinfo=UTC),
        GITHUB: None,
    }
    redacted = redactor.redact(value)
    assert redacted == {
        "headers": {"Authorization": "Bearer [REDACTED:bearer_token]"},
        "args": ["--token=[REDACTED:secret_assignment]", ("plain", {"[REDACTED:aws_access_key]"})],
        "count": 3,
        "when": datetime(2026, 1, 1, tzinfo=UTC),
        "[REDACTED:github_token]": None,
    }
    assert value["args"][0] == "--token=abc123456"  # the input is not modified
    clean = {"a": [1, "two", ("three",)], "b": {"c": None}}
    assert redactor.redact(clean) is clean


def test_named_tuples_keep_their_type() -> None:
    class Pair(NamedTuple):
        name: str
        value: str

    redacted = Redactor().redact(Pair("key", f"k={OPENAI}"))
    assert redacted == Pair("key", "k=[REDACTED:openai_key]")
    assert isinstance(redacted, Pair)


def test_models_come_back_validated_and_of_the_same_type() -> None:
    call = ToolCall(id="call_1", name="shell:run", arguments={"cmd": f"curl -H 'Authorization: Bearer {OPENAI}'"})
    draft = EventDraft.of(ToolCalledPayload(call=call), id="evt_1", ts=datetime(2026, 1, 1, tzinfo=UTC), agent_id="a")
    event = Event.placed(draft, run_id="run_1", seq=2)
    redacted = Redactor().redact(event)
    assert type(redacted) is Event
    assert isinstance(redacted.payload, ToolCalledPayload)
    assert redacted.payload.call.arguments == {"cmd": "curl -H 'Authorization: Bearer [REDACTED:bearer_token]'"}
    assert OPENAI not in redacted.model_dump_json()
    assert redacted.model_dump(exclude={"payload"}) == event.model_dump(exclude={"payload"})
    assert Event.model_validate_json(redacted.model_dump_json()) == redacted
    assert Redactor().redact(redacted) is redacted  # nothing left: the same object


def test_model_fields_set_extras_and_root_models() -> None:
    class Settings(BaseModel):
        model_config = ConfigDict(extra="allow")
        name: str = "default"
        token: str = ""

    settings = Settings(token="token=abc12345", note=f"key {AWS}")
    redacted = Redactor().redact(settings)
    assert redacted.token == "token=[REDACTED:secret_assignment]"
    assert redacted.model_extra == {"note": "key [REDACTED:aws_access_key]"}
    assert redacted.model_fields_set == {"token", "note"}

    class Blob(RootModel[dict[str, str]]):
        pass

    blob = Blob({"auth": f"Bearer {OPENAI}"})
    assert Redactor().redact(blob) == Blob({"auth": "Bearer [REDACTED:bearer_token]"})
    clean = Blob({"a": "b"})
    assert Redactor().redact(clean) is clean


def test_a_model_that_no_longer_validates_raises_instead_of_leaking() -> None:
    class Short(BaseModel):
        code: str = Field(max_length=20)

    with pytest.raises(ValidationError, match="at most 20 characters"):
        Redactor().redact(Short(code="token=abc12345"))


def test_custom_patterns_with_groups_flags_and_backreferences() -> None:
    patterns = [
        SecretPattern("internal_id", re.compile(r"acme-(?P<v>[0-9]{6})", re.IGNORECASE), group="v"),
        SecretPattern("quoted_pin", r"pin=(?P<q>['\"])(?P<v>[0-9]{4})(?P=q)", group="v"),
        SecretPattern("shouting", r"(?i)secretword[0-9]+"),
        SecretPattern("same_group_name", r"ref:(?P<v>[0-9]{3})#", group="v"),
    ]
    redactor = Redactor(patterns=patterns)
    text = "ACME-123456 pin='1234' SecretWord42 ref:555# and password=stays"
    assert redactor.redact_text(text) == (
        "ACME-[REDACTED:internal_id] pin='[REDACTED:quoted_pin]' [REDACTED:shouting] ref:[REDACTED:same_group_name]# "
        "and password=stays"
    )


def test_degenerate_user_patterns_terminate() -> None:
    redactor = Redactor(patterns=[SecretPattern("zed", r"z*")])  # matches the empty string everywhere
    assert redactor.redact_text("ab zzz ab") == "ab [REDACTED:zed] ab"
    assert redactor.redact_text("abc") == "abc"
    pin = Redactor(patterns=[SecretPattern("pin", r"pin=(?P<v>\S+)", group="v")])  # re-matches its own output
    assert pin.redact_text("pin=1234") == "pin=[REDACTED:pin]"
    assert pin.redact_text("pin=[REDACTED:pin]") == "pin=[REDACTED:pin]"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "Bad-Kind", "pattern": "x"}, "must match"),
        ({"kind": "pair", "pattern": r"(a)\1"}, "named backreferences"),
        ({"kind": "grouped", "pattern": "(?P<a>x)", "group": "b"}, "no group named 'b'"),
        ({"kind": "ascii", "pattern": re.compile("x", re.ASCII)}, "only the flags"),
    ],
)
def test_invalid_patterns_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SecretPattern(**kwargs)


# --------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------

# A planted secret has a digit, so that it cannot be part of a marker such as "[REDACTED:secret]".
known_secrets = st.text(alphabet=string.ascii_lowercase + string.digits + "-_.!", min_size=8, max_size=40).filter(
    lambda s: any(c.isdigit() for c in s)
)


@given(secret=known_secrets, before=st.text(), after=st.text())
def test_a_planted_known_secret_never_survives(secret: str, before: str, after: str) -> None:
    redactor = Redactor(secrets=[secret])
    redacted = redactor.redact_text(before + secret + after)
    assert secret not in redacted
    assert redactor.redact_text(redacted) == redacted


def _key(prefix: str, alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=size, max_size=size).map(lambda body: prefix + body)


format_secrets = st.one_of(
    _key("gh" + "p_", string.ascii_letters + string.digits, 36),
    _key("AK" + "IA", string.ascii_uppercase + string.digits, 16),
    _key("sk-" + "proj-", string.ascii_letters + string.digits, 40).map(lambda key: key + "7"),
    _key("AI" + "za", string.ascii_letters + string.digits + "-_", 35),
    _key("xo" + "xp-", string.ascii_letters + string.digits + "-", 30),
)
separators = st.sampled_from([" ", "\n", "\t", ", ", "; ", " (", ") "])


@given(secret=format_secrets, before=st.text(), after=st.text(), left=separators, right=separators)
def test_a_planted_credential_never_survives(secret: str, before: str, after: str, left: str, right: str) -> None:
    redactor = Redactor()
    redacted = redactor.redact_text(before + left + secret + right + after)
    assert secret not in redacted
    assert redactor.redact_text(redacted) == redacted


fragments = st.sampled_from(
    [
        "password=",
        "token: ",
        '"api_key": "',
        "Bearer ",
        "://u:",
        "@",
        "[REDACTED:",
        "]",
        "secret",
        "sk-",
        GITHUB,
        AWS,
        "hunter22",
        " ",
        "'",
        '"',
        "\n",
    ]
)


@given(parts=st.lists(st.one_of(fragments, st.text(max_size=5)), max_size=12))
def test_redaction_is_idempotent_and_known_values_never_survive(parts: list[str]) -> None:
    redactor = Redactor(secrets=["hunter22"])
    once = redactor.redact_text("".join(parts))
    assert "hunter22" not in once
    assert redactor.redact_text(once) == once


def test_a_replacement_that_exposes_a_neighbour_is_followed_up_in_the_same_call() -> None:
    # `password` follows the key without a word boundary; once the key is a marker, it starts a word.
    redactor = Redactor()
    redacted = redactor.redact_text(f"{AWS}password=hunter22")
    assert redacted == "[REDACTED:aws_access_key]password=[REDACTED:secret_assignment]"
    assert redactor.redact_text(redacted) is redacted


def test_a_secret_wrapped_in_a_fake_marker_is_still_found() -> None:
    redactor = Redactor(secrets=["hunter22"])
    redacted = redactor.redact_text("[REDACTED:hunter22]")
    assert redacted == "[REDACTED:[REDACTED:secret]]"
    assert redactor.redact_text(redacted) is redacted
