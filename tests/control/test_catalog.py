"""The model catalog: shipped data, lookup, cost, user overrides and their validation errors."""

from __future__ import annotations

import pickle
from datetime import date
from importlib import resources
from pathlib import Path

import pytest
from pydantic import ValidationError

from runtime_control.catalog import (
    Capability,
    CatalogError,
    LongContextPricing,
    ModelCatalog,
    ModelInfo,
    UnknownModelError,
)
from runtime_core.agents import AgentSpec
from runtime_core.exceptions import ConfigurationError, NotFoundError
from runtime_core.usage import Usage

REQUIRED = [
    "openai:gpt-4.1",
    "openai:gpt-4.1-mini",
    "openai:gpt-4.1-nano",
    "openai:gpt-4o",
    "openai:gpt-4o-mini",
    "openai:o3",
    "openai:o4-mini",
    "openai:gpt-5",
    "openai:gpt-5-mini",
    "openai:gpt-5-nano",
    "anthropic:claude-opus-4-1",
    "anthropic:claude-opus-4-5",
    "anthropic:claude-sonnet-4-5",
    "anthropic:claude-sonnet-4-0",
    "anthropic:claude-haiku-4-5",
    "anthropic:claude-3-7-sonnet-20250219",
    "anthropic:claude-3-5-haiku-20241022",
    "google:gemini-2.5-pro",
    "google:gemini-2.5-flash",
    "google:gemini-2.0-flash",
]


def model(**overrides: object) -> ModelInfo:
    fields: dict[str, object] = {
        "provider": "acme",
        "id": "m1",
        "context_window": 1000,
        "max_output_tokens": 100,
        "input_usd_per_mtok": 1.0,
        "output_usd_per_mtok": 2.0,
    }
    return ModelInfo.model_validate({**fields, **overrides})


def write(tmp_path: Path, text: str, name: str = "models.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------------
# The shipped catalog
# --------------------------------------------------------------------------------------------------


def test_shipped_catalog_covers_current_models_with_prices_and_provenance() -> None:
    catalog = ModelCatalog.default()
    assert catalog is ModelCatalog.default()  # loaded once
    for name in REQUIRED:
        info = catalog.get(name)
        assert info.name == name
        assert info.input_usd_per_mtok > 0
        assert info.output_usd_per_mtok > info.input_usd_per_mtok
        assert info.max_output_tokens <= info.context_window
        assert info.supports("tools")
        assert info.supports(Capability.STREAMING)
    assert catalog.as_of is not None
    assert catalog.as_of >= date(2026, 1, 1)
    assert catalog.source is not None
    assert "models.dev" in catalog.source
    assert len(catalog) == len(list(catalog)) == len(catalog.models) >= len(REQUIRED)
    assert "ModelCatalog(" in repr(catalog)


def test_shipped_file_is_package_data() -> None:
    data = resources.files("runtime_control").joinpath("data", "models.toml")
    assert data.is_file()
    assert '[models."openai:gpt-4.1"]' in data.read_text(encoding="utf-8")


def test_lookup_by_agent_spec_model_alias_and_bare_name() -> None:
    catalog = ModelCatalog.default()
    spec = AgentSpec(name="a", model="anthropic:claude-sonnet-4-5")
    assert catalog.get(spec.model).context_window == 200_000
    assert catalog.get("anthropic:claude-sonnet-4-5-20250929") is catalog.get(spec.model)
    assert catalog.get("openai:gpt-4.1-2025-04-14").name == "openai:gpt-4.1"
    assert catalog.get("gpt-4o-mini").name == "openai:gpt-4o-mini"
    assert catalog.get("claude-opus-4").name == "anthropic:claude-opus-4-0"
    assert "gemini-2.5-pro" in catalog
    assert "openai:gpt-7" not in catalog
    assert 42 not in catalog
    assert catalog.find("nope") is None


def test_scripted_models_are_free() -> None:
    catalog = ModelCatalog.default()
    info = catalog.get("scripted:demo")
    assert info.name == "scripted:demo"
    assert catalog.cost("scripted:anything", Usage(input_tokens=10**9, output_tokens=10**9)) == 0.0
    assert catalog.find("scripted:") is None


def test_unknown_model_error_lists_close_matches_and_pickles() -> None:
    catalog = ModelCatalog.default()
    with pytest.raises(UnknownModelError) as caught:
        catalog.get("openai:gpt4.1")
    error = caught.value
    assert isinstance(error, NotFoundError)
    assert error.model == "openai:gpt4.1"
    assert error.suggestions[0] == "openai:gpt-4.1"
    assert "did you mean openai:gpt-4.1" in str(error)
    clone = pickle.loads(pickle.dumps(error))
    assert (type(clone), clone.suggestions, str(clone)) == (UnknownModelError, error.suggestions, str(error))

    with pytest.raises(UnknownModelError, match="claude-sonnet-4-5") as bare:
        catalog.get("claude-sonet-4-5")
    assert all(":" in name for name in bare.value.suggestions)

    with pytest.raises(UnknownModelError, match="add it with a catalog file") as nothing:
        catalog.get("zzzzzz:qqqqqq")
    assert nothing.value.suggestions == ()


def test_bare_name_offered_by_two_providers_is_ambiguous() -> None:
    catalog = ModelCatalog([model(provider="a", id="m"), model(provider="b", id="m")])
    assert catalog.find("m") is None
    with pytest.raises(UnknownModelError, match="offered by several providers: use one of a:m, b:m") as caught:
        catalog.get("m")
    assert caught.value.suggestions == ("a:m", "b:m")
    assert catalog.get("b:m").provider == "b"


# --------------------------------------------------------------------------------------------------
# Cost
# --------------------------------------------------------------------------------------------------


def test_cost_matches_a_hand_calculation() -> None:
    catalog = ModelCatalog.default()
    usage = Usage(input_tokens=10_000, cached_input_tokens=4_000, output_tokens=2_000, requests=1)
    # gpt-4.1: 6,000 fresh x $2 + 4,000 cached x $0.50 + 2,000 out x $8, per million tokens.
    assert catalog.cost("openai:gpt-4.1", usage) == pytest.approx((6_000 * 2 + 4_000 * 0.5 + 2_000 * 8) / 1e6)
    assert catalog.cost("openai:gpt-4.1", usage) == pytest.approx(0.03)
    # claude-haiku-4-5: $1 in, $0.10 cache read, $5 out.
    assert catalog.get("claude-haiku-4-5").cost(usage) == pytest.approx((6_000 + 400 + 10_000) / 1e6)
    assert catalog.cost("openai:o3", Usage()) == 0.0


def test_cached_tokens_without_a_cache_price_cost_the_input_price() -> None:
    info = ModelCatalog.default().get("google:gemini-2.0-flash-lite")
    assert info.cached_input_usd_per_mtok is None
    cached = Usage(input_tokens=1_000_000, cached_input_tokens=1_000_000)
    assert info.cost(cached) == pytest.approx(0.075)
    # More cached than input tokens (a provider quirk) is clamped rather than billed twice.
    assert model().cost(Usage(input_tokens=100, cached_input_tokens=500)) == pytest.approx(100 / 1e6)


def test_long_context_band_applies_per_call_prompt_size() -> None:
    pro = ModelCatalog.default().get("google:gemini-2.5-pro")
    assert pro.long_context == LongContextPricing(
        above_input_tokens=200_000, input_usd_per_mtok=2.5, output_usd_per_mtok=15.0, cached_input_usd_per_mtok=0.25
    )
    short = Usage(input_tokens=200_000, output_tokens=1_000, requests=1)
    long = Usage(input_tokens=300_000, cached_input_tokens=100_000, output_tokens=1_000, requests=1)
    assert pro.cost(short) == pytest.approx((200_000 * 1.25 + 1_000 * 10) / 1e6)
    assert pro.cost(long) == pytest.approx((200_000 * 2.5 + 100_000 * 0.25 + 1_000 * 15) / 1e6)
    # Two calls of 150K tokens each stay in the normal band.
    two_calls = Usage(input_tokens=300_000, output_tokens=1_000, requests=2)
    assert pro.cost(two_calls) == pytest.approx((300_000 * 1.25 + 1_000 * 10) / 1e6)
    band = LongContextPricing(above_input_tokens=10, input_usd_per_mtok=3, output_usd_per_mtok=4)
    assert model(long_context=band).cost(Usage(input_tokens=20, cached_input_tokens=10)) == pytest.approx(60 / 1e6)


# --------------------------------------------------------------------------------------------------
# Models and catalogs built in code
# --------------------------------------------------------------------------------------------------


def test_capabilities() -> None:
    info = model(capabilities=["tools", "json"])
    assert info.supports("json")
    assert info.supports(Capability.TOOLS)
    assert not info.supports(Capability.VISION)
    with pytest.raises(ValueError, match="telepathy"):
        info.supports("telepathy")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_output_tokens": 2000}, "exceeds context_window"),
        ({"aliases": ["m1"]}, "repeats the model id"),
        ({"aliases": ["x", "x"]}, "aliases must be unique"),
        ({"aliases": ["has space"]}, "invalid alias"),
        ({"id": "*", "aliases": ["x"]}, "cannot have aliases"),
        ({"input_usd_per_mtok": -1}, "greater than or equal to 0"),
        ({"output_usd_per_mtok": float("inf")}, "finite"),
        ({"provider": "bad provider"}, "pattern"),
        ({"capabilities": ["telepathy"]}, "capabilities"),
        ({"colour": "blue"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_models_are_rejected(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        model(**overrides)


def test_catalog_rejects_names_claimed_twice() -> None:
    with pytest.raises(CatalogError, match="'acme:m2' names both 'acme:m1' and 'acme:m2'") as caught:
        ModelCatalog([model(aliases=["m2"]), model(id="m2")])
    assert (caught.value.path, caught.value.line) == (None, None)
    assert isinstance(caught.value, ConfigurationError)
    ModelCatalog([model(aliases=["m2"]), model(provider="other", id="m2")])  # another provider: fine


# --------------------------------------------------------------------------------------------------
# User catalog files
# --------------------------------------------------------------------------------------------------


def test_user_file_overrides_fields_and_adds_models(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
as_of = 2027-02-01

[models."openai:gpt-4.1"]
input_usd_per_mtok = 1.5          # negotiated price; everything else stays as shipped

[models."google:gemini-2.5-pro".long_context]
output_usd_per_mtok = 20.0

[models."ollama:*"]               # local models are free
context_window = 131_072
max_output_tokens = 8_192
input_usd_per_mtok = 0
output_usd_per_mtok = 0
capabilities = ["tools", "streaming"]

[models]
"acme:r-1" = {aliases=["r"], context_window=9, max_output_tokens=9, input_usd_per_mtok=1, output_usd_per_mtok=3}
""",
    )
    catalog = ModelCatalog.load(path)
    gpt = catalog.get("openai:gpt-4.1")
    assert (gpt.input_usd_per_mtok, gpt.output_usd_per_mtok, gpt.context_window) == (1.5, 8.0, 1_047_576)
    band = catalog.get("gemini-2.5-pro").long_context
    assert band is not None
    assert (band.above_input_tokens, band.output_usd_per_mtok) == (200_000, 20.0)
    assert catalog.cost("ollama:llama3.1:8b", Usage(input_tokens=10**6)) == 0.0
    assert catalog.get("ollama:llama3.1:8b").id == "llama3.1:8b"
    assert catalog.get("acme:r").name == "acme:r-1"
    assert catalog.as_of == date(2027, 2, 1)
    assert catalog.source == ModelCatalog.default().source
    assert ModelCatalog.default().get("openai:gpt-4.1").input_usd_per_mtok == 2.0  # the default is untouched


def test_later_files_win_and_defaults_can_be_left_out(tmp_path: Path) -> None:
    first = write(
        tmp_path,
        """
source = "our price sheet"
[models."acme:m"]
context_window = 1000
max_output_tokens = 100
input_usd_per_mtok = 1
output_usd_per_mtok = 2
""",
        "a.toml",
    )
    second = write(tmp_path, '[models."acme:m"]\noutput_usd_per_mtok = 4\n', "b.toml")
    catalog = ModelCatalog.load(first, str(second), defaults=False)
    assert [info.name for info in catalog] == ["acme:m"]
    assert catalog.get("acme:m").output_usd_per_mtok == 4
    assert (catalog.source, catalog.as_of) == ("our price sheet", None)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            '[models."openai:gpt-4.1"]\ncontext_window = 5\n\ninput_usd_per_mtok = -2\n',
            4,
            "models.'openai:gpt-4.1'.input_usd_per_mtok: Input should be greater than or equal to 0",
        ),
        ('\n[models."acme:new"]\ncontext_window = 1000\n', 2, "models.'acme:new'.max_output_tokens: Field required"),
        ('[models."acme:new"]\nkind = "x"\n', 1, "'acme:new'.context_window: Field required"),
        ('[models."openai:o3"]\ncolour = "red"\n', 2, "models.'openai:o3'.colour: Extra inputs are not permitted"),
        (
            '[models."openai:o3"]\ncapabilities = ["telepathy"]\n',
            2,
            "models.'openai:o3'.capabilities.0: Input should be",
        ),
        (
            '[models."openai:o3".long_context]\nabove_input_tokens = 0\n',
            2,
            "long_context.above_input_tokens: Input should be greater than 0",
        ),
        ('[models."openai:o3"]\nid = "o4"\n', 1, "id come from the table key"),
        ("\n\n[models.gpt]\ncontext_window = 1\n", 3, "model key 'gpt' must have the form 'provider:model'"),
        ('[models]\n"acme:x" = 3\n', 2, "models.'acme:x' must be a table"),
        ("models = 3\n", 1, "'models' must be a table of model tables"),
        ('prices = "cheap"\n', 1, "unknown top-level key 'prices'"),
        ("source = 1\n", 1, "'source' must be a string"),
        ('as_of = "yesterday"\n', 1, "'as_of' must be a TOML date"),
        (
            '[models."openai:o3"]\naliases = ["gpt-4o"]\n',
            2,
            "'openai:gpt-4o' names both 'openai:gpt-4o' and 'openai:o3'",
        ),
        ('[models."openai:o3"]\ncontext_window = \n', 2, "invalid TOML"),
    ],
)
def test_invalid_user_files_name_the_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as caught:
        ModelCatalog.load(path)
    error = caught.value
    assert (error.path, error.line) == (str(path), line)
    assert f"{path}:{line}: " in str(error)
    assert message in str(error)


def test_a_name_clash_is_blamed_on_the_file_that_introduced_it(tmp_path: Path) -> None:
    # gpt-4o is defined in the shipped file *before* o3; gpt-5.2 after it: both clashes point here.
    path = write(tmp_path, '[models."openai:gpt-5.2"]\n\naliases = ["o3"]\n')
    with pytest.raises(CatalogError) as caught:
        ModelCatalog.load(path)
    assert (caught.value.path, caught.value.line) == (str(path), 3)
    assert "'openai:o3' names both 'openai:gpt-5.2' and 'openai:o3'" in str(caught.value)


def test_line_numbers_survive_multi_line_strings(tmp_path: Path) -> None:
    text = [
        'source = """',
        "[see the price list]",  # not TOML: ignored by the line index
        "input_usd_per_mtok = 3",
        '"""',
        '[models."openai:o3"]',
        "input_usd_per_mtok = -3",
    ]
    path = write(tmp_path, "\n".join(text))
    with pytest.raises(CatalogError) as caught:
        ModelCatalog.load(path)
    assert caught.value.line == 6


def test_every_problem_of_a_file_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, '[models."openai:o3"]\ninput_usd_per_mtok = -1\noutput_usd_per_mtok = -1\n')
    with pytest.raises(CatalogError) as caught:
        ModelCatalog.load(path)
    assert f"{path}:2: " in str(caught.value)
    assert f"{path}:3: " in str(caught.value)


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(CatalogError, match="cannot read catalog file") as caught:
        ModelCatalog.load(missing)
    assert (caught.value.path, caught.value.line) == (str(missing), None)
