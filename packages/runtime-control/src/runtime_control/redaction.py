"""Secret redaction for everything bound for the run log, checkpoints, telemetry and terminal output.

A [`Redactor`][runtime_control.redaction.Redactor] replaces secrets with a marker that names what was
found, ``[REDACTED:<kind>]`` (``[REDACTED:openai_key]``; known secret values become
``[REDACTED:secret]``). It finds secrets two ways:

- **patterns** for well-known credential formats ([`DEFAULT_PATTERNS`][runtime_control.redaction.DEFAULT_PATTERNS]:
  API keys of OpenAI, Anthropic, Google, AWS, GitHub, Slack, Stripe and Hugging Face, private key blocks,
  JWTs, bearer and basic credentials, passwords in URLs, and ``password=...``-style assignments);
- **known values**: secrets from configuration, and the values of environment variables whose names
  look secret (``*KEY*``, ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``). Values shorter than 8 characters
  are ignored, so that a short value cannot blank out ordinary text.

Patterns are compiled once, when the redactor is built. Every built-in pattern starts with literal text,
so text without secrets costs one fast substring-led scan per pattern (tens of MB/s) and comes back as the
same object; where a candidate is found, one combined expression decides what starts there. Redaction
is idempotent: markers are never redacted again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from pydantic import BaseModel, RootModel

__all__ = [
    "DEFAULT_PATTERNS",
    "MIN_SECRET_LENGTH",
    "Redactor",
    "SecretPattern",
    "redaction_marker",
]

MIN_SECRET_LENGTH: Final = 8
"""Known secret values shorter than this are ignored."""

_SECRET_ENV_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
_KNOWN_KIND = "secret"
_KNOWN_MARKER = f"[REDACTED:{_KNOWN_KIND}]"
_KIND = re.compile(r"^[a-z0-9_]+$")
_MARKER = r"\[REDACTED:[a-z0-9_]+\]"
_NAMED_GROUP = re.compile(r"\(\?P<([A-Za-z_][A-Za-z0-9_]*)>")
_NAMED_BACKREF = re.compile(r"\(\?P=([A-Za-z_][A-Za-z0-9_]*)\)")
_NUMBERED_BACKREF = re.compile(r"(?<!\\)(?:\\\\)*\\[1-9]")
_SCOPED_FLAGS = {re.IGNORECASE: "i", re.MULTILINE: "m", re.DOTALL: "s", re.VERBOSE: "x"}

_T = TypeVar("_T")


def redaction_marker(kind: str) -> str:
    """Return the text that replaces a secret of `kind`: ``[REDACTED:<kind>]``."""
    return f"[REDACTED:{kind}]"


@dataclass(frozen=True, slots=True)
class SecretPattern:
    """A credential format.

    Attributes:
        kind: Lower-case name shown in the marker (``openai_key`` gives ``[REDACTED:openai_key]``).
        pattern: The regular expression. Flags of a compiled pattern are kept (``re.I``, ``re.M``,
            ``re.S``, ``re.X``). Named groups and named backreferences may be used; numbered
            backreferences may not, because patterns are combined into one expression.
        group: Name of the group to replace (a ``password=`` assignment keeps its key); ``None``
            replaces the whole match.
    """

    kind: str
    pattern: str | re.Pattern[str]
    group: str | None = None

    def __post_init__(self) -> None:
        if not _KIND.match(self.kind):
            raise ValueError(f"secret pattern kind {self.kind!r} must match [a-z0-9_]+")
        compiled = re.compile(self.pattern)
        if compiled.flags & ~(re.UNICODE | sum(_SCOPED_FLAGS)):
            raise ValueError(f"secret pattern {self.kind!r}: only the flags I, M, S and X are supported")
        if _NUMBERED_BACKREF.search(compiled.pattern):
            raise ValueError(f"secret pattern {self.kind!r}: use named backreferences (?P=name), not \\1")
        if self.group is not None and self.group not in compiled.groupindex:
            raise ValueError(f"secret pattern {self.kind!r} has no group named {self.group!r}")


# Every pattern starts with literal text, which the regex engine finds with a fast substring search. A
# lookbehind *after* the literal checks that it does not continue a longer word: `AIza(?<![...].{4})` is
# "AIza" not preceded by an identifier character.
_TOKEN = r"[A-Za-z0-9_-]"


def _word(literal: str, width: int, before: str = "A-Za-z0-9_-") -> str:
    """Return `literal` (matching `width` characters) where it starts a word."""
    return f"{literal}(?<![{before}].{{{width}}})"


# `password: str` is a type annotation, not a secret.
_TYPE_NAME = r"(?:str|bytes|int|float|bool|None|Optional|Any|Secret[A-Za-z]*|string|number|boolean)\b"
# A quoted value, or an unquoted one up to a delimiter that is neither a call or subscript
# (`token = get_token()`, `key = os.environ[...]`) nor a placeholder (`password=${DB_PASSWORD}`).
_SECRET_VALUE = (
    rf"""(?P<value>"(?!{_MARKER}")[^"\n]+"|'(?!{_MARKER}')[^'\n]+'"""
    rf"""|(?![$%]|{_TYPE_NAME})[^\s"'`,;&<>(){{}}\[\]]{{3,}}+(?![(\[]))"""
)
# Words of a key name that announce a secret value: `DB_PASSWORD=`, `"apiKey":`, `X-Auth-Token:`,
# `aws_secret_access_key =`. The word must end the name (`max_tokens` and `password_hash` are not
# secrets).
_SECRET_WORDS = {
    "pass": "(?:word|wd|phrase)",
    "private": "[_-]?key",
    "secret": "(?:[_-]?key)?",
    "token": "",
    "api": "[_-]?key",
    "access": "[_-]?key",
    "auth": "[_-]?key",
    "credential": "s?",
}


def _assignments() -> tuple[SecretPattern, ...]:
    """Return ``key = value`` patterns, one per word and spelling (`password`, `Password`, `PASSWORD`)."""
    patterns = []
    for word, rest in _SECRET_WORDS.items():
        for spelling, suffix, before in (
            (word, rest, "A-Za-z0-9"),
            (word.capitalize(), rest, "A-Z0-9"),  # after a lower-case letter: camelCase (`dbPassword`)
            (word.upper(), rest.upper(), "A-Z0-9"),
        ):
            key = f"{_word(spelling, len(spelling), before)}{suffix}(?![A-Za-z0-9])"
            pattern = rf"""{key}["']?[ \t]*(?:=(?!=)|:(?!:))[ \t]*{_SECRET_VALUE}"""
            patterns.append(SecretPattern("secret_assignment", pattern, group="value"))
    return tuple(patterns)


DEFAULT_PATTERNS: Final[tuple[SecretPattern, ...]] = (
    SecretPattern(
        "private_key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    ),
    SecretPattern("anthropic_key", rf"{_word('sk-ant-', 7)}{_TOKEN}{{20,}}"),
    SecretPattern("openai_key", rf"{_word('sk-', 3)}(?:proj-|svcacct-|admin-)?(?={_TOKEN}*[0-9]){_TOKEN}{{20,}}"),
    SecretPattern("google_api_key", rf"{_word('AIza', 4)}{_TOKEN}{{35}}(?!{_TOKEN})"),
    SecretPattern("google_oauth", rf"{_word('ya29[.]', 5)}{_TOKEN}{{20,}}"),
    SecretPattern("google_oauth", rf"{_word('GOCSPX-', 7)}{_TOKEN}{{20,}}"),
    SecretPattern("aws_access_key", rf"{_word('A(?:KIA|SIA|BIA|CCA)', 4, 'A-Z0-9')}[A-Z0-9]{{16}}(?![A-Z0-9])"),
    SecretPattern("github_token", rf"{_word('gh[pousr]_', 4)}[A-Za-z0-9]{{36,}}"),
    SecretPattern("github_token", rf"{_word('github_pat_', 11)}[A-Za-z0-9_]{{22,}}"),
    SecretPattern("slack_token", rf"{_word('xox[abposr]-', 5)}[A-Za-z0-9-]{{10,}}"),
    SecretPattern("slack_token", rf"{_word('xapp-', 5)}[0-9]-[A-Za-z0-9-]{{10,}}"),
    SecretPattern("slack_webhook", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}"),
    SecretPattern("stripe_key", rf"{_word('sk_(?:live|test)_', 8)}[A-Za-z0-9]{{16,}}"),
    SecretPattern("stripe_key", rf"{_word('rk_(?:live|test)_', 8)}[A-Za-z0-9]{{16,}}"),
    SecretPattern("huggingface_token", rf"{_word('hf_', 3)}[A-Za-z0-9]{{30,}}"),
    SecretPattern("jwt", rf"{_word('eyJ', 3)}{_TOKEN}{{5,}}\.eyJ{_TOKEN}{{5,}}\.{_TOKEN}*"),
    # A bearer token has a digit or is long, so that "bearer shareholders" stays prose.
    SecretPattern(
        "bearer_token",
        rf"{_word('(?:Bearer|bearer|BEARER)', 6)}\s+"
        r"(?P<value>(?=[A-Za-z0-9._~+/=-]*[0-9])[A-Za-z0-9._~+/=-]{8,}|[A-Za-z0-9._~+/=-]{20,})",
        group="value",
    ),
    SecretPattern(
        "basic_auth",
        rf"{_word('(?:Authorization|authorization|AUTHORIZATION)', 13)}[ \t]*:[ \t]*(?i:basic)[ \t]+"
        r"(?P<value>[A-Za-z0-9+/]{6,}={0,2})",
        group="value",
    ),
    SecretPattern("url_password", rf"://[^\s/:@\[\]]+:(?P<value>(?!{_MARKER})[^\s/@]+)@", group="value"),
    *_assignments(),
)
"""The built-in credential formats, most specific first."""


class Redactor:
    """Replaces secrets in strings, JSON-like values and pydantic models.

    Args:
        patterns: Credential formats to find (default:
            [`DEFAULT_PATTERNS`][runtime_control.redaction.DEFAULT_PATTERNS]).
        secrets: Known secret values (from configuration); values shorter than `min_length` are ignored.
        min_length: Minimum length of a known secret value.
    """

    def __init__(
        self,
        *,
        patterns: Iterable[SecretPattern] | None = None,
        secrets: Iterable[str] = (),
        min_length: int = MIN_SECRET_LENGTH,
    ) -> None:
        self.patterns = tuple(DEFAULT_PATTERNS if patterns is None else patterns)
        # Longest first: where two known values start at the same place, the longer one wins.
        self._values = tuple(sorted({v for v in secrets if len(v) >= min_length}, key=lambda v: (-len(v), v)))
        # Finding candidates: one scan per pattern (and per known value). Each pattern starts with literal
        # text, which the regex engine finds with a fast substring search; one alternation of them all
        # would try every branch at every position instead (measured 10-50x slower on ordinary text).
        # Markers this redactor writes are kept as they are, so that redacting twice changes nothing. Only
        # its own kinds count: a secret a model wrapped in "[REDACTED:...]" itself is still found.
        kinds = sorted({pattern.kind for pattern in self.patterns} | {_KNOWN_KIND})
        marker = rf"\[REDACTED:(?:{'|'.join(kinds)})\]"
        self._detectors = (re.compile(marker), *(re.compile(pattern.pattern) for pattern in self.patterns))
        # Deciding at a candidate: one combined expression, anchored there. Its branches are in priority
        # order: an existing marker (kept as is), known values (longest first), then the patterns.
        branches = [f"(?P<_marker>{marker})"]
        if self._values:
            branches.append(f"(?P<_known>{'|'.join(re.escape(value) for value in self._values)})")
        self._groups: dict[str, tuple[str, str | None]] = {}
        for index, pattern in enumerate(self.patterns):
            name = f"_p{index}"
            branches.append(f"(?P<{name}>{_embed(pattern, prefix=f'{name}_')})")
            self._groups[name] = (redaction_marker(pattern.kind), f"{name}_{pattern.group}" if pattern.group else None)
        self._regex = re.compile("|".join(branches))

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        patterns: Iterable[SecretPattern] | None = None,
        secrets: Iterable[str] = (),
        min_length: int = MIN_SECRET_LENGTH,
    ) -> Redactor:
        """Build a redactor that also knows the values of secret-looking environment variables.

        A variable counts as secret when its upper-cased name contains ``KEY``, ``TOKEN``, ``SECRET`` or
        ``PASSWORD``.

        Args:
            environ: The environment to read (default: `os.environ`).
            patterns: Credential formats (default: the built-in ones).
            secrets: Further known secret values.
            min_length: Minimum length of a known secret value.

        Returns:
            The redactor.
        """
        env = os.environ if environ is None else environ
        from_env = [value for name, value in env.items() if any(word in name.upper() for word in _SECRET_ENV_WORDS)]
        return cls(patterns=patterns, secrets=[*secrets, *from_env], min_length=min_length)

    def redact_text(self, text: str) -> str:
        """Return `text` with every secret replaced by its marker (`text` itself when none is found).

        Matches are taken left to right; where several start at the same place, an existing marker wins
        (it is kept), then the longest known value, then the first pattern in order.
        """
        # A replacement can turn its neighbour into a match (`AKIA...password=x`: once the key is a
        # marker, `password` starts a word), so passes repeat until nothing changes. Each replacement
        # turns text outside markers into a marker, and markers are kept, so this ends.
        while (redacted := self._redact_once(text)) != text:
            text = redacted
        return text

    def _redact_once(self, text: str) -> str:
        upcoming = self._next_starts(text, 0, None)
        pieces: list[str] = []
        copied = 0
        while any(start >= 0 for start in upcoming):
            start = min(start for start in upcoming if start >= 0)
            match = self._regex.match(text, start)
            if match is None or match.end() == start:  # a user pattern that matched the empty string
                resume = start + 1
                if resume > len(text):
                    break
            else:
                resume = match.end()
                replacement = self._replacement(match)
                if replacement is not None:
                    pieces += (text[copied:start], replacement)
                    copied = resume
            upcoming = self._next_starts(text, resume, upcoming)
        if not pieces:
            return text
        pieces.append(text[copied:])
        return "".join(pieces)

    def _next_starts(self, text: str, position: int, previous: list[int] | None) -> list[int]:
        """Return, per detector then per known value, where its next match at or after `position` starts.

        ``-1`` means no further match. A previous start at or after `position` is still the next one and
        is not searched for again.
        """
        starts: list[int] = []
        for index, detector in enumerate(self._detectors):
            start = -1 if previous is None else previous[index]
            if previous is None or 0 <= start < position:
                found = detector.search(text, position)
                start = found.start() if found else -1
            starts.append(start)
        for index, value in enumerate(self._values, len(self._detectors)):
            start = -1 if previous is None else previous[index]
            if previous is None or 0 <= start < position:
                start = text.find(value, position)
            starts.append(start)
        return starts

    def _replacement(self, match: re.Match[str]) -> str | None:
        """Return the text replacing `match`, or ``None`` to keep it (an existing marker)."""
        branch = match.lastgroup
        if branch == "_marker":
            return None
        if branch == "_known":
            return _KNOWN_MARKER
        marker, group = self._groups[cast(str, branch)]
        if group is None:
            return marker
        value = match.group(group)
        quote = value[0] if len(value) > 1 and value[0] == value[-1] and value[0] in "\"'" else ""
        whole = match.string
        return (
            f"{whole[match.start() : match.start(group)]}{quote}{marker}{quote}{whole[match.end(group) : match.end()]}"
        )

    def redact(self, value: _T) -> _T:
        """Return `value` with every secret in it replaced.

        Strings are redacted; dicts (keys and values), lists, tuples, sets and pydantic models are
        redacted recursively. A model comes back as a new, validated instance of the same type (the
        fields that were set stay the only ones set); anything else is returned as is. Values without
        secrets come back as the same object.

        Args:
            value: What to redact.

        Returns:
            The redacted value, of the same type.

        Raises:
            pydantic.ValidationError: A redacted model no longer validates (a marker replaced a secret
                in a constrained field); nothing is returned unredacted.
        """
        return cast(_T, self._redact(value))

    def _redact(self, value: object) -> object:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, BaseModel):
            return self._redact_model(value)
        if isinstance(value, dict):
            items = [(self._redact(k), self._redact(v)) for k, v in value.items()]
            if all(new_k is k and new_v is v for (new_k, new_v), (k, v) in zip(items, value.items(), strict=True)):
                return value
            return dict(items)
        if isinstance(value, list | tuple | set | frozenset):
            redacted = [self._redact(item) for item in value]
            if all(new is old for new, old in zip(redacted, value, strict=True)):
                return value
            if isinstance(value, tuple) and hasattr(value, "_make"):  # a named tuple keeps its type
                return value._make(redacted)
            container = next(base for base in (list, tuple, set, frozenset) if isinstance(value, base))
            return container(redacted)
        return value

    def _redact_model(self, model: BaseModel) -> BaseModel:
        if isinstance(model, RootModel):
            root = self._redact(model.root)
            return model if root is model.root else type(model).model_validate(root, by_name=True)
        changed: dict[str, Any] = {}
        for name in type(model).model_fields:
            old = getattr(model, name)
            new = self._redact(old)
            if new is not old:
                changed[name] = new
        extra = model.__pydantic_extra__ or {}
        new_extra = self._redact(extra)
        if not changed and new_extra is extra:
            return model
        data = {name: getattr(model, name) for name in model.model_fields_set if name in type(model).model_fields}
        data.update(changed)
        data.update(cast(dict[str, Any], new_extra))
        return type(model).model_validate(data, by_name=True)


def _embed(pattern: SecretPattern, *, prefix: str) -> str:
    """Return `pattern` as a branch of the combined expression: groups renamed, flags scoped."""
    source = pattern.pattern if isinstance(pattern.pattern, str) else pattern.pattern.pattern
    flags = 0 if isinstance(pattern.pattern, str) else pattern.pattern.flags
    global_flags = re.match(r"^\(\?([imsx]+)\)", source)
    if global_flags:
        source = source[global_flags.end() :]
    source = _NAMED_GROUP.sub(lambda m: f"(?P<{prefix}{m.group(1)}>", source)
    source = _NAMED_BACKREF.sub(lambda m: f"(?P={prefix}{m.group(1)})", source)
    letters = "".join(letter for flag, letter in _SCOPED_FLAGS.items() if flags & flag)
    letters += global_flags.group(1) if global_flags else ""
    return f"(?{''.join(sorted(set(letters)))}:{source})" if letters else source
