"""Budget arithmetic on `BudgetState`: reserve, settle, count, verdict, carve, absorb, and the JSON round trip.

The expected values are computed here from the documented meaning of each limit (tokens are input plus
output tokens, reservations count as spent, soft at ``soft_ratio`` of a limit, hard at the limit), not
from the state's own bookkeeping.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from runtime_core.budgets import Budget, BudgetLevel, BudgetState, BudgetVerdict
from runtime_core.checkpoints import CheckpointState
from runtime_core.usage import Usage

LIMITS = ("tokens", "cost_usd", "turns", "wall_time_s", "tool_calls")
FIELDS = {
    "tokens": "max_tokens",
    "cost_usd": "max_cost_usd",
    "turns": "max_turns",
    "wall_time_s": "max_wall_time_s",
    "tool_calls": "max_tool_calls",
}
SMALLEST = {"tokens": 1, "cost_usd": 1e-9, "turns": 1, "wall_time_s": 1e-3, "tool_calls": 1}
"""What `carve` gives a child for a limit the parent has used up: the smallest amount a budget can hold."""


def consume(state: BudgetState, limit: str, amount: float) -> BudgetState:
    """Use `amount` of `limit` through the public methods."""
    if limit == "tokens":
        return state.settle(Usage(input_tokens=int(amount)))
    if limit == "cost_usd":
        return state.settle(Usage(cost_usd=amount))
    if limit == "turns":
        return state.count(turns=int(amount))
    if limit == "wall_time_s":
        return state.count(wall_time_s=amount)
    return state.count(tool_calls=int(amount))


def used(state: BudgetState) -> dict[str, float]:
    """What counts against each limit: spent plus reserved."""
    spent = state.spent
    return {
        "tokens": spent.input_tokens + spent.output_tokens + state.reserved_tokens,
        "cost_usd": spent.cost_usd + state.reserved_cost_usd,
        "turns": state.turns,
        "wall_time_s": state.wall_time_s,
        "tool_calls": state.tool_calls,
    }


def maxima(budget: Budget) -> dict[str, float | None]:
    return {limit: getattr(budget, FIELDS[limit]) for limit in LIMITS}


# -- strategies ---------------------------------------------------------------------------------------------

# Cents and tenths of seconds keep the float arithmetic exact enough that remainders are either used up or
# well above the smallest amounts (the smallest amounts have their own tests).
cents = st.integers(1, 10_000).map(lambda n: n / 100)
tenths = st.integers(1, 10_000).map(lambda n: n / 10)


def budgets(*, with_ratio: bool = True) -> st.SearchStrategy[Budget]:
    """Budgets with any subset of limits; without `with_ratio`, ``soft_ratio`` is sometimes left unset."""
    optional: dict[str, st.SearchStrategy[Any]] = {
        "max_tokens": st.integers(1, 20_000),
        "max_cost_usd": cents,
        "max_turns": st.integers(1, 60),
        "max_wall_time_s": tenths,
        "max_tool_calls": st.integers(1, 60),
    }
    required: dict[str, st.SearchStrategy[Any]] = {}
    ratios = st.integers(1, 20).map(lambda n: n / 20)
    if with_ratio:
        required["soft_ratio"] = ratios
    else:
        optional["soft_ratio"] = ratios
    return st.fixed_dictionaries(required, optional=optional).map(lambda fields: Budget(**fields))


usages = st.builds(
    Usage,
    input_tokens=st.integers(0, 10_000),
    output_tokens=st.integers(0, 10_000),
    requests=st.integers(0, 5),
    cost_usd=st.integers(0, 5_000).map(lambda n: n / 100),
)

states = st.builds(
    BudgetState,
    budget=budgets(),
    spent=usages,
    turns=st.integers(0, 80),
    tool_calls=st.integers(0, 80),
    wall_time_s=st.integers(0, 20_000).map(lambda n: n / 10),
    reserved_tokens=st.integers(0, 5_000),
    reserved_cost_usd=st.integers(0, 2_000).map(lambda n: n / 100),
)


# -- verdict: ok, soft, hard ---------------------------------------------------------------------------------


def test_an_unlimited_budget_is_always_within_budget() -> None:
    state = BudgetState().settle(Usage(input_tokens=10**9, cost_usd=10**6)).count(turns=10**6, wall_time_s=1e9)
    assert state.verdict() == BudgetVerdict()
    assert state.verdict().level is BudgetLevel.OK
    assert state.verdict().message == "within budget"


@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize(
    ("amount", "level"),
    [
        (0, BudgetLevel.OK),
        (89, BudgetLevel.OK),
        (90, BudgetLevel.SOFT),  # soft_ratio (0.9) of the limit
        (99, BudgetLevel.SOFT),
        (100, BudgetLevel.HARD),  # the limit itself
        (150, BudgetLevel.HARD),
    ],
)
def test_each_limit_is_soft_at_the_ratio_and_hard_at_the_limit(limit: str, amount: int, level: BudgetLevel) -> None:
    state = consume(BudgetState(budget=Budget(**{FIELDS[limit]: 100})), limit, amount)
    verdict = state.verdict()
    assert verdict.level is level
    if level is BudgetLevel.OK:
        assert verdict == BudgetVerdict()
    else:
        assert (verdict.limit, verdict.used, verdict.maximum) == (limit, amount, 100)


@pytest.mark.parametrize(
    ("ratio", "amount", "level"),
    [
        (0.5, 49, BudgetLevel.OK),
        (0.5, 50, BudgetLevel.SOFT),
        (1.0, 99, BudgetLevel.OK),  # a ratio of 1: never soft, straight to hard
        (1.0, 100, BudgetLevel.HARD),
    ],
)
def test_the_soft_ratio_moves_the_soft_threshold(ratio: float, amount: int, level: BudgetLevel) -> None:
    state = BudgetState(budget=Budget(max_turns=100, soft_ratio=ratio)).count(turns=amount)
    assert state.verdict().level is level


def test_hard_on_any_limit_wins_over_soft_on_another() -> None:
    state = BudgetState(budget=Budget(max_tokens=100, max_tool_calls=5))
    state = state.settle(Usage(input_tokens=95)).count(tool_calls=5)  # tokens soft, tool calls hard
    assert (state.verdict().level, state.verdict().limit) == (BudgetLevel.HARD, "tool_calls")


@settings(max_examples=300)
@given(state=states)
def test_the_verdict_is_the_worst_level_over_every_limit(state: BudgetState) -> None:
    verdict = state.verdict()
    amounts, limits, ratio = used(state), maxima(state.budget), state.budget.soft_ratio
    reached = [name for name in LIMITS if (top := limits[name]) is not None and amounts[name] >= top]
    near = [name for name in LIMITS if (top := limits[name]) is not None and amounts[name] >= top * ratio]
    if reached:
        assert verdict.level is BudgetLevel.HARD
        assert verdict.limit in reached
    elif near:
        assert verdict.level is BudgetLevel.SOFT
        assert verdict.limit in near
    else:
        assert verdict == BudgetVerdict()
    if verdict.limit is not None:
        assert (verdict.used, verdict.maximum) == (amounts[verdict.limit], limits[verdict.limit])


# -- reserve, settle, count -----------------------------------------------------------------------------------


def test_reservations_count_as_spent_until_settled() -> None:
    state = BudgetState(budget=Budget(max_tokens=1_000, max_cost_usd=1.0)).settle(Usage(input_tokens=500))
    assert state.reserve(tokens=399).verdict().level is BudgetLevel.OK
    assert state.reserve(tokens=400).verdict() == BudgetVerdict(
        level=BudgetLevel.SOFT, limit="tokens", used=900, maximum=1_000
    )
    assert state.reserve(tokens=500).verdict() == BudgetVerdict(
        level=BudgetLevel.HARD, limit="tokens", used=1_000, maximum=1_000
    )
    assert state.reserve(tokens=0, cost_usd=1.0).verdict().limit == "cost_usd"
    reserved = state.reserve(tokens=700, cost_usd=0.25)
    assert (reserved.reserved_tokens, reserved.reserved_cost_usd) == (700, 0.25)
    assert reserved.spent == state.spent  # a reservation spends nothing yet


def test_settle_releases_the_reservation_and_adds_the_reported_usage() -> None:
    state = BudgetState(budget=Budget(max_tokens=1_000)).reserve(tokens=950, cost_usd=0.5)
    assert state.verdict().level is BudgetLevel.SOFT
    settled = state.settle(Usage(input_tokens=100, output_tokens=20, requests=1, cost_usd=0.01))
    assert (settled.reserved_tokens, settled.reserved_cost_usd) == (0, 0.0)
    assert settled.spent == Usage(input_tokens=100, output_tokens=20, requests=1, cost_usd=0.01)
    assert settled.verdict().level is BudgetLevel.OK


@settings(max_examples=200)
@given(
    state=states,
    tokens=st.integers(0, 10_000),
    cost=st.integers(0, 1_000).map(lambda n: n / 100),
    usage=usages,
)
def test_reserve_then_settle_leaves_only_the_reported_usage(
    state: BudgetState, tokens: int, cost: float, usage: Usage
) -> None:
    reserved = state.reserve(tokens=tokens, cost_usd=cost)
    assert used(reserved)["tokens"] == state.spent.total_tokens + tokens
    assert used(reserved)["cost_usd"] == state.spent.cost_usd + cost
    settled = reserved.settle(usage)
    assert settled == state.model_copy(
        update={"spent": state.spent + usage, "reserved_tokens": 0, "reserved_cost_usd": 0.0}
    )


@settings(max_examples=200)
@given(
    state=states,
    turns=st.integers(0, 10),
    calls=st.integers(0, 10),
    seconds=st.integers(0, 1_000).map(lambda n: n / 10),
)
def test_count_adds_turns_tool_calls_and_time_and_nothing_else(
    state: BudgetState, turns: int, calls: int, seconds: float
) -> None:
    before = state.model_dump()
    counted = state.count(turns=turns, tool_calls=calls, wall_time_s=seconds)
    assert state.model_dump() == before  # pure: a new state, the old one unchanged
    assert counted == state.model_copy(
        update={
            "turns": state.turns + turns,
            "tool_calls": state.tool_calls + calls,
            "wall_time_s": state.wall_time_s + seconds,
        }
    )
    assert counted.count() == counted


# -- carve and absorb -------------------------------------------------------------------------------------------


def test_carve_takes_the_request_within_the_parent_remainder() -> None:
    parent = BudgetState(budget=Budget(max_tokens=1_000, max_turns=10, soft_ratio=0.8))
    parent = parent.settle(Usage(input_tokens=200, output_tokens=100)).count(turns=4).reserve(tokens=50)
    child = parent.carve(Budget(max_tokens=5_000, max_cost_usd=2.0, max_tool_calls=3, soft_ratio=0.5))
    assert child == Budget(
        max_tokens=650,  # 1000 - 300 spent - 50 reserved: less than asked
        max_cost_usd=2.0,  # the parent has no cost limit: as asked
        max_turns=None,  # turns are the child's own: not carved from the parent's
        max_wall_time_s=None,
        max_tool_calls=3,
        soft_ratio=0.5,  # the stricter of 0.8 and 0.5
    )


def test_carve_applies_the_stricter_soft_ratio() -> None:
    parent = BudgetState(budget=Budget(max_turns=10, soft_ratio=0.75))
    assert parent.carve().soft_ratio == 0.75
    assert parent.carve(Budget(max_tokens=10)).soft_ratio == 0.75
    assert parent.carve(Budget(max_tokens=10, soft_ratio=0.9)).soft_ratio == 0.75
    assert parent.carve(Budget(max_tokens=10, soft_ratio=0.5)).soft_ratio == 0.5
    assert BudgetState().carve() == Budget()  # nothing limited, nothing asked: nothing limited


@settings(max_examples=300)
@given(parent=states, requested=st.none() | budgets(with_ratio=False))
def test_carve_never_exceeds_the_parent_remainder_and_respects_the_request(
    parent: BudgetState, requested: Budget | None
) -> None:
    child = parent.carve(requested)
    asked = maxima(requested) if requested is not None else dict.fromkeys(LIMITS)
    amounts, limits, given_ = used(parent), maxima(parent.budget), maxima(child)
    assert given_["turns"] == asked["turns"]  # turns are the child's own
    for limit in LIMITS:
        top, want, got = limits[limit], asked[limit], given_[limit]
        if limit == "turns":
            continue
        if top is None:
            assert got == want, limit  # nothing to carve from: exactly the request
            continue
        assert got is not None, limit  # a limited parent never has an unlimited child
        left = max(0.0, top - amounts[limit])
        if left < SMALLEST[limit]:
            # Used up (or left over by float rounding, 0.8 - (0.7 + 0.1)): the child stops after one unit.
            assert got == SMALLEST[limit], limit
            continue
        assert got <= left, limit
        assert want is None or got <= want, limit
        assert got == (left if want is None else min(want, left)), limit  # and not less than it may have
    assert child.soft_ratio == min(parent.budget.soft_ratio, (requested or Budget()).soft_ratio)


@pytest.mark.parametrize("limit", [limit for limit in LIMITS if limit != "turns"])
def test_carving_a_used_up_limit_gives_a_child_that_is_hard_after_one_unit(limit: str) -> None:
    parent = consume(BudgetState(budget=Budget(**{FIELDS[limit]: 10})), limit, 12)  # over the limit, even
    assert parent.verdict().level is BudgetLevel.HARD
    child = BudgetState(budget=parent.carve(Budget(**{FIELDS[limit]: 5})))
    assert getattr(child.budget, FIELDS[limit]) == SMALLEST[limit]
    assert child.verdict().level is BudgetLevel.OK  # nothing used yet
    assert consume(child, limit, SMALLEST[limit]).verdict() == BudgetVerdict(
        level=BudgetLevel.HARD, limit=limit, used=SMALLEST[limit], maximum=SMALLEST[limit]
    )


def test_carve_gives_a_fractional_remainder_as_it_is() -> None:
    parent = BudgetState(budget=Budget(max_wall_time_s=10.0)).count(wall_time_s=9.75)
    assert parent.carve().max_wall_time_s == 0.25
    assert parent.carve(Budget(max_wall_time_s=0.1)).max_wall_time_s == 0.1


def test_absorb_rolls_the_child_usage_and_tool_calls_up_into_the_parent() -> None:
    parent = BudgetState(budget=Budget(max_tokens=1_000, max_tool_calls=10, max_cost_usd=1.0))
    parent = parent.settle(Usage(input_tokens=300, output_tokens=100, requests=2, cost_usd=0.2)).count(tool_calls=3)
    child = BudgetState(budget=parent.carve(Budget(max_tokens=800)))
    assert (child.budget.max_tokens, child.budget.max_tool_calls) == (600, 7)
    child = child.settle(Usage(input_tokens=500, output_tokens=100, requests=3, cost_usd=0.3)).count(
        turns=4, tool_calls=7
    )
    assert child.verdict().level is BudgetLevel.HARD  # the child used all it was given
    rolled = parent.absorb(child)
    assert rolled.spent == Usage(input_tokens=800, output_tokens=200, requests=5, cost_usd=0.5)
    assert rolled.tool_calls == 10
    assert rolled.budget == parent.budget
    assert rolled.verdict() == BudgetVerdict(level=BudgetLevel.HARD, limit="tokens", used=1_000, maximum=1_000)


@settings(max_examples=200)
@given(parent=states, child=states)
def test_absorb_adds_the_child_spending_to_the_parent(parent: BudgetState, child: BudgetState) -> None:
    rolled = parent.absorb(child)
    assert rolled.spent == parent.spent + child.spent
    assert rolled.tool_calls == parent.tool_calls + child.tool_calls
    assert (rolled.budget, rolled.reserved_tokens, rolled.reserved_cost_usd) == (
        parent.budget,
        parent.reserved_tokens,
        parent.reserved_cost_usd,
    )
    # Rolling up only adds: the parent is never further from its limits afterwards.
    assert all(used(rolled)[limit] >= used(parent)[limit] for limit in LIMITS)


# -- persistence ----------------------------------------------------------------------------------------------


@settings(max_examples=200)
@given(state=states)
def test_states_round_trip_through_json_as_in_a_checkpoint(state: BudgetState) -> None:
    assert BudgetState.model_validate_json(state.model_dump_json()) == state
    assert BudgetState.model_validate(json.loads(json.dumps(state.model_dump(mode="json")))) == state
    checkpoint = CheckpointState(turn=3, messages=(), budget=state)
    restored = CheckpointState.model_validate_json(checkpoint.model_dump_json())
    assert restored.budget == state
    assert restored.budget.verdict() == state.verdict()


@settings(max_examples=200)
@given(parent=states, requested=budgets(with_ratio=False))
def test_carve_gives_the_same_budget_for_a_request_that_went_through_json(
    parent: BudgetState, requested: Budget
) -> None:
    # Budgets travel as JSON (agent specs in run.created, the HTTP API, checkpoints): an equal request
    # must carve the same child however it was built.
    restored = Budget.model_validate_json(requested.model_dump_json())
    assert restored == requested
    assert parent.carve(restored) == parent.carve(requested)


# -- wording and validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (BudgetState(budget=Budget(max_turns=10)).count(turns=3), "within budget"),
        (BudgetState(budget=Budget(max_turns=10)).count(turns=10), "the turns budget is reached: 10 of 10"),
        (
            BudgetState(budget=Budget(max_cost_usd=0.5)).settle(Usage(cost_usd=0.45)),
            "the cost_usd budget is nearly reached: 0.45 of 0.5",
        ),
        (
            BudgetState(budget=Budget(max_wall_time_s=60)).count(wall_time_s=61.5),
            "the wall_time_s budget is reached: 61.5 of 60",
        ),
        (
            BudgetState(budget=Budget(max_tool_calls=20)).count(tool_calls=19),
            "the tool_calls budget is nearly reached: 19 of 20",
        ),
        (
            BudgetState(budget=Budget(max_tokens=5_000)).settle(Usage(input_tokens=4_000, output_tokens=1_000)),
            "the tokens budget is reached: 5000 of 5000",
        ),
    ],
)
def test_verdict_messages(state: BudgetState, message: str) -> None:
    assert state.verdict().message == message


def test_verdict_messages_show_large_token_counts_in_full() -> None:
    # Token budgets run to millions; the run log and the user must see the count, not 1.23457e+06.
    state = BudgetState(budget=Budget(max_tokens=1_000_000)).settle(Usage(input_tokens=1_234_567))
    message = state.verdict().message
    assert message.startswith("the tokens budget is reached: ")
    assert re.search(r"\b1[,_ ]?234[,_ ]?567 of 1[,_ ]?000[,_ ]?000$", message), message


@pytest.mark.parametrize(
    "fields",
    [
        {"max_tokens": 0},
        {"max_cost_usd": 0.0},
        {"max_turns": -1},
        {"max_wall_time_s": -1.0},
        {"max_tool_calls": 0},
        {"soft_ratio": 0.0},
        {"soft_ratio": 1.5},
        {"max_turn": 3},  # unknown fields are errors
    ],
)
def test_invalid_budgets_are_rejected(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Budget(**fields)


def test_budget_states_are_immutable() -> None:
    state = BudgetState(budget=Budget(max_turns=3))
    with pytest.raises(ValidationError):
        state.turns = 5  # type: ignore[misc]  # frozen: the assignment is the point of the test
    assert state.count(turns=1) is not state
    assert state.turns == 0
