"""The model catalog: context windows, prices and capabilities of known models, and the cost of usage.

The catalog ships as a data file (``runtime_control/data/models.toml``) and can be overridden by user
files in the same format, merged field by field over it. Models are looked up by the
``"<provider>:<model>"`` form of `AgentSpec.model`, by alias, or by a bare model name when only one
provider has it. A table keyed ``"<provider>:*"`` prices every otherwise unlisted model of that provider
(the shipped catalog prices ``scripted:*`` at zero).

An unknown model is an error ([`UnknownModelError`][runtime_control.catalog.UnknownModelError], which
lists close matches), never a silent zero cost: a budget in USD must not be defeated by a typo.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator, model_validator

from runtime_control.config_files import Positions, line_of, read_document
from runtime_control.exceptions import CatalogError, ConfigFileError, UnknownModelError
from runtime_core.usage import Usage

__all__ = [
    "Capability",
    "LongContextPricing",
    "ModelCatalog",
    "ModelInfo",
]

_TOKENS_PER_PRICE_UNIT = 1_000_000
_WILDCARD = "*"
_SHIPPED = "runtime_control/data/models.toml"
_TOP_LEVEL_KEYS = frozenset({"models", "source", "as_of"})
_DERIVED_FIELDS = frozenset({"provider", "id"})

_Price = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]  # USD per million tokens


class Capability(StrEnum):
    """Something a model can do."""

    TOOLS = "tools"
    """Function / tool calling."""
    STREAMING = "streaming"
    """Streamed responses."""
    VISION = "vision"
    """Image input."""
    REASONING = "reasoning"
    """Built-in reasoning ("thinking") tokens."""
    JSON = "json"
    """A native JSON or structured-output mode."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LongContextPricing(_Frozen):
    """A higher price band for calls whose prompt is longer than a threshold (every token of the call).

    ``cached_input_usd_per_mtok`` of ``None`` prices cached tokens at this band's input price.
    """

    above_input_tokens: PositiveInt
    input_usd_per_mtok: _Price
    output_usd_per_mtok: _Price
    cached_input_usd_per_mtok: _Price | None = None


class ModelInfo(_Frozen):
    """What the runtime knows about one model.

    Prices are USD per million tokens. ``cached_input_usd_per_mtok`` of ``None`` means the provider has
    no cache discount: cached tokens cost the input price.
    """

    provider: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    id: str = Field(min_length=1, pattern=r"^\S+$")
    aliases: tuple[str, ...] = ()
    context_window: PositiveInt
    max_output_tokens: PositiveInt
    input_usd_per_mtok: _Price
    output_usd_per_mtok: _Price
    cached_input_usd_per_mtok: _Price | None = None
    capabilities: frozenset[Capability] = frozenset()
    long_context: LongContextPricing | None = None

    @field_validator("aliases")
    @classmethod
    def _clean_aliases(cls, aliases: tuple[str, ...]) -> tuple[str, ...]:
        for alias in aliases:
            if not alias or any(char.isspace() for char in alias) or alias == _WILDCARD:
                raise ValueError(f"invalid alias {alias!r}: aliases are model names without whitespace")
        if len(set(aliases)) != len(aliases):
            raise ValueError("aliases must be unique")
        return aliases

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.max_output_tokens > self.context_window:
            raise ValueError(
                f"max_output_tokens ({self.max_output_tokens}) exceeds context_window ({self.context_window})"
            )
        if self.id in self.aliases:
            raise ValueError(f"alias {self.id!r} repeats the model id")
        if self.id == _WILDCARD and self.aliases:
            raise ValueError("a provider-wide '*' entry cannot have aliases")
        return self

    @property
    def name(self) -> str:
        """The ``"provider:model"`` name."""
        return f"{self.provider}:{self.id}"

    def supports(self, capability: Capability | str) -> bool:
        """Whether the model has `capability` (``"tools"``, ``"vision"``, ...)."""
        return Capability(capability) in self.capabilities

    def cost(self, usage: Usage) -> float:
        """Return the USD cost of `usage` at this model's list prices.

        ``usage.cached_input_tokens`` are part of ``usage.input_tokens`` and are priced at the cached
        rate. The long-context band applies when the prompt of a call is above its threshold; for usage
        summed over several calls (``usage.requests > 1``) the average prompt per call decides.

        Args:
            usage: Tokens consumed.

        Returns:
            The cost in USD.
        """
        input_rate, cached_rate, output_rate = self._rates(usage)
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        fresh = usage.input_tokens - cached
        return (fresh * input_rate + cached * cached_rate + usage.output_tokens * output_rate) / _TOKENS_PER_PRICE_UNIT

    def _rates(self, usage: Usage) -> tuple[float, float, float]:
        """Return the input, cached-input and output prices that apply to `usage`."""
        prices: ModelInfo | LongContextPricing = self
        band = self.long_context
        if band is not None and usage.input_tokens / max(usage.requests, 1) > band.above_input_tokens:
            prices = band
        cached = prices.cached_input_usd_per_mtok
        input_rate = prices.input_usd_per_mtok
        return input_rate, input_rate if cached is None else cached, prices.output_usd_per_mtok


class ModelCatalog:
    """An immutable set of models with lookup and pricing.

    Use [`ModelCatalog.default`][runtime_control.catalog.ModelCatalog.default] for the shipped catalog
    and [`ModelCatalog.load`][runtime_control.catalog.ModelCatalog.load] to merge user files over it.

    Args:
        models: The entries; names and aliases must not collide within a provider.
        source: Where the prices come from.
        as_of: When the prices were last checked.

    Raises:
        CatalogError: Two entries claim the same name or alias.
    """

    def __init__(self, models: Iterable[ModelInfo], *, source: str | None = None, as_of: date | None = None) -> None:
        self._models = tuple(models)
        self.source = source
        self.as_of = as_of
        conflicts = _name_conflicts(self._models)
        if conflicts:
            raise CatalogError("; ".join(message for _, _, message in conflicts))
        self._by_name: dict[str, ModelInfo] = {}
        self._wildcards: dict[str, ModelInfo] = {}
        self._by_bare: dict[str, list[ModelInfo]] = {}
        for info in self._models:
            if info.id == _WILDCARD:
                self._wildcards[info.provider] = info
                continue
            for name in (info.id, *info.aliases):
                self._by_name[f"{info.provider}:{name}"] = info
                self._by_bare.setdefault(name, []).append(info)

    @classmethod
    def default(cls) -> ModelCatalog:
        """Return the catalog shipped with runtime-control (loaded once, shared: it is immutable)."""
        return _default_catalog()

    @classmethod
    def load(cls, *paths: str | Path, defaults: bool = True) -> ModelCatalog:
        """Build a catalog from TOML files merged in order, by default over the shipped catalog.

        A file may override single fields of a model defined before it (``input_usd_per_mtok`` of
        ``"openai:gpt-4.1"``, say) or add models, which then need every required field. Sub-tables
        (``long_context``) merge the same way; lists (``aliases``, ``capabilities``) are replaced.

        Args:
            paths: Catalog files, later ones winning.
            defaults: Start from the shipped catalog.

        Returns:
            The merged catalog.

        Raises:
            CatalogError: A file cannot be read, is not valid TOML or holds invalid entries; the message
                names the file and line.
        """
        files = [_shipped_file()] if defaults else []
        files.extend(_read_file(Path(path)) for path in paths)
        return _build(files)

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        """Every entry, in definition order (provider-wide ``"*"`` entries included)."""
        return self._models

    def find(self, model: str) -> ModelInfo | None:
        """Return the entry for `model`, or ``None``.

        Args:
            model: ``"provider:model"`` (the model may be an alias), or a bare model name or alias that
                only one provider has.
        """
        provider, colon, name = model.partition(":")
        if not colon:
            candidates = self._by_bare.get(model, [])
            return candidates[0] if len(candidates) == 1 else None
        info = self._by_name.get(model)
        if info is not None:
            return info
        wildcard = self._wildcards.get(provider)
        if wildcard is not None and name:
            return wildcard.model_copy(update={"id": name})
        return None

    def get(self, model: str) -> ModelInfo:
        """Return the entry for `model` (see [`find`][runtime_control.catalog.ModelCatalog.find]).

        Raises:
            UnknownModelError: The model is not in the catalog, or a bare name is offered by several
                providers; the error lists close matches.
        """
        info = self.find(model)
        if info is not None:
            return info
        candidates = self._by_bare.get(model, [])
        if len(candidates) > 1:
            raise UnknownModelError(model, suggestions=sorted(c.name for c in candidates), ambiguous=True)
        names = list(self._by_name) if ":" in model else [*self._by_name, *self._by_bare]
        matches = difflib.get_close_matches(model, names, n=3, cutoff=0.6)
        full = (info.name for m in matches for info in ([self._by_name[m]] if m in self._by_name else self._by_bare[m]))
        raise UnknownModelError(model, suggestions=list(dict.fromkeys(full)))

    def cost(self, model: str, usage: Usage) -> float:
        """Return the USD cost of `usage` on `model` (see [`ModelInfo.cost`][runtime_control.catalog.ModelInfo.cost]).

        Raises:
            UnknownModelError: The model is not in the catalog.
        """
        return self.get(model).cost(usage)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.find(model) is not None

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        return f"ModelCatalog({len(self._models)} models, as_of={self.as_of})"


# --------------------------------------------------------------------------------------------------
# Loading: TOML files with line numbers for errors.
# --------------------------------------------------------------------------------------------------


@dataclass
class _File:
    """A parsed catalog file and the line of every table header and key it defines."""

    path: str
    data: dict[str, Any]
    lines: Positions = field(default_factory=dict)

    def line_of(self, *path: str) -> int | None:
        """Return the line of the deepest known prefix of `path`."""
        return line_of(self.lines, path)


def _parse(text: str, path: str) -> _File:
    try:
        data, lines = read_document(text, format="toml", path=path)
    except ConfigFileError as error:
        line = error.problems[0].line
        prefix = f"{path}:{line}" if line else path
        raise CatalogError(f"{prefix}: invalid TOML: {error.problems[0].message}", path=path, line=line) from None
    assert isinstance(data, dict)  # a TOML document is a table
    return _File(path=path, data=data, lines=lines)


def _read_file(path: Path) -> _File:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogError(f"{path}: cannot read catalog file: {error.strerror or error}", path=str(path)) from error
    return _parse(text, str(path))


@functools.cache
def _shipped_file() -> _File:
    text = resources.files("runtime_control").joinpath("data", "models.toml").read_text(encoding="utf-8")
    return _parse(text, _SHIPPED)


@functools.cache
def _default_catalog() -> ModelCatalog:
    return _build([_shipped_file()])


@dataclass
class _Problems:
    """Problems found while building a catalog, each located in a file when possible."""

    found: list[tuple[str, int | None, str]] = field(default_factory=list)

    def add(self, source: _File, line: int | None, message: str) -> None:
        self.found.append((source.path, line, message))

    def raise_if_any(self) -> None:
        if not self.found:
            return
        path, line, _ = self.found[0]
        text = "\n".join(f"{p}:{n}: {m}" if n else f"{p}: {m}" for p, n, m in self.found)
        raise CatalogError(f"invalid model catalog:\n{text}", path=path, line=line)


_Origins = dict[tuple[str, str], _File]
"""The file that last set each ``(model key, field)``; field ``""`` is the model's table itself."""


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def _collect(files: Sequence[_File], problems: _Problems) -> tuple[dict[str, dict[str, Any]], _Origins]:
    """Merge the ``models`` tables of `files`; remember which file last set each field."""
    entries: dict[str, dict[str, Any]] = {}
    origin: _Origins = {}
    for source in files:
        for key in source.data.keys() - _TOP_LEVEL_KEYS:
            problems.add(source, source.line_of(key), f"unknown top-level key {key!r} (expected models, source, as_of)")
        models = source.data.get("models", {})
        if not isinstance(models, dict):
            problems.add(source, source.line_of("models"), "'models' must be a table of model tables")
            continue
        for key, fields in models.items():
            line = source.line_of("models", key)
            provider, colon, model = key.partition(":")
            if not (colon and provider and model):
                problems.add(source, line, f"model key {key!r} must have the form 'provider:model'")
            elif not isinstance(fields, dict):
                problems.add(source, line, f"models.{key!r} must be a table")
            elif derived := sorted(_DERIVED_FIELDS & fields.keys()):
                problems.add(source, line, f"models.{key!r}: {', '.join(derived)} come from the table key")
            else:
                entries[key] = _merge(entries.get(key, {}), fields)
                origin[(key, "")] = source
                origin.update({(key, name): source for name in fields})
    return entries, origin


def _build(files: Sequence[_File]) -> ModelCatalog:
    problems = _Problems()
    entries, origin = _collect(files, problems)
    models: list[ModelInfo] = []
    for key, fields in entries.items():
        provider, _, model = key.partition(":")
        try:
            models.append(ModelInfo.model_validate({**fields, "provider": provider, "id": model}))
        except ValidationError as error:
            for detail in error.errors(include_url=False):
                location = tuple(str(part) for part in detail["loc"])
                source = origin.get((key, location[0]), origin[(key, "")]) if location else origin[(key, "")]
                where = ".".join(location) if location else "entry"
                problems.add(
                    source, source.line_of("models", key, *location), f"models.{key!r}.{where}: {detail['msg']}"
                )
    for pair in _name_conflicts(models):
        # Blame the entry that a later file touched: that is where the clash was introduced.
        candidates = [(origin.get((info.name, "aliases"), origin[(info.name, "")]), info) for info in pair[:2]]
        source, info = max(candidates, key=lambda candidate: files.index(candidate[0]))
        problems.add(source, source.line_of("models", info.name, "aliases"), pair[2])
    source_text, as_of = _metadata(files, problems)
    problems.raise_if_any()
    return ModelCatalog(models, source=source_text, as_of=as_of)


def _metadata(files: Sequence[_File], problems: _Problems) -> tuple[str | None, date | None]:
    """Return ``source`` and ``as_of`` of the last file that sets them."""
    source_text: str | None = None
    as_of: date | None = None
    for source in files:
        text = source.data.get("source")
        if text is not None:
            if isinstance(text, str):
                source_text = text
            else:
                problems.add(source, source.line_of("source"), "'source' must be a string")
        day = source.data.get("as_of")
        if day is not None:
            if isinstance(day, date):
                as_of = day
            else:
                problems.add(source, source.line_of("as_of"), "'as_of' must be a TOML date (2026-01-31)")
    return source_text, as_of


def _name_conflicts(models: Sequence[ModelInfo]) -> list[tuple[ModelInfo, ModelInfo, str]]:
    """Return ``(entry, earlier entry, message)`` for each name or alias claimed twice within a provider."""
    claimed: dict[str, ModelInfo] = {}
    conflicts: list[tuple[ModelInfo, ModelInfo, str]] = []
    for info in models:
        for name in (info.id, *info.aliases):
            full = f"{info.provider}:{name}"
            owner = claimed.setdefault(full, info)
            if owner is not info:
                message = f"{full!r} names both {owner.name!r} and {info.name!r} (as a model id or alias)"
                conflicts.append((info, owner, message))
    return conflicts
