"""Policy engine: microseconds per decision with 100 rules.

Run (from the workspace root)::

    uv run python bench/policy.py [--runs 7] [--decisions 20000] [--json] [--check]

Scenarios, each an engine with 100 rules (the ``balanced`` preset, the default allowlist):

- ``typical``: rules spread over ten tool families, with every operator, roles, phases and depth ranges;
  twenty different calls in turn, some denied, some asked, most allowed.
- ``worst_no_match``: all 100 rules apply to the called tool and each tests a regular expression on the
  same argument; none matches, so every rule is evaluated and the default action decides.
- ``worst_last_match``: as above, but the lowest-priority rule matches.
- ``typical_with_checkers``: ``typical`` plus two safety checkers that inspect every call.

Method: the engine is built and every call evaluated once before the clock starts (the engine compiles
its per-tool matchers on first use; ``build_ms`` and ``first_call_us`` report those one-off costs). Then
``--runs`` timed runs of ``--decisions`` decisions each, with the garbage collector paused; the result
per scenario is the median over the runs of (run time / decisions). Target: <= 20 µs per decision in
every scenario. The exit status is 0 whatever the numbers, unless ``--check`` is given: then 1 when the
target is missed.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from runtime_control.policy import RulePolicyEngine, SafetyVerdict
from runtime_core import ArgCondition, PolicyAction, PolicyContext, PolicyRule, ToolCall, ToolSpec

TARGET_US = 20.0
RULES = 100
FAMILIES = ("file", "shell", "web", "git", "db", "mail", "calendar", "ticket", "deploy", "search")
OPERATIONS = ("read", "write", "run", "list", "delete")

Request = tuple[ToolCall, ToolSpec, PolicyContext]


def _condition(index: int) -> ArgCondition:
    kind = index % 5
    if kind == 0:
        return ArgCondition(path="command", op="matches", value=rf"\bforbidden{index}\b")
    if kind == 1:
        return ArgCondition(path="options.size", op="gt", value=1_000_000 + index)
    if kind == 2:
        return ArgCondition(path="target", op="equals", value=f"prod-{index}")
    if kind == 3:
        return ArgCondition(path="labels", op="contains", value=f"label-{index}")
    return ArgCondition(path="paths.0", op="matches", value=rf"^/secret/{index}/")


def typical_rules() -> list[PolicyRule]:
    rules = []
    for index in range(RULES):
        family = FAMILIES[index % len(FAMILIES)]
        tools = (f"{family}:*",) if index % 3 else (f"{family}:{OPERATIONS[index % len(OPERATIONS)]}",)
        rules.append(
            PolicyRule(
                id=f"rule-{index}",
                action=(PolicyAction.DENY, PolicyAction.ASK, PolicyAction.ALLOW)[index % 3],
                tools=tools,
                conditions=(_condition(index),) if index % 4 else (_condition(index), _condition(index + 1)),
                role="reviewer" if index % 7 == 0 else None,
                phase="build" if index % 11 == 0 else None,
                max_depth=2 if index % 13 == 0 else None,
                priority=index % 10,
            )
        )
    return rules


def typical_requests() -> list[Request]:
    requests = []
    for index in range(20):
        family = FAMILIES[index % len(FAMILIES)]
        name = f"{family}:{OPERATIONS[index % len(OPERATIONS)]}"
        arguments: dict[str, Any] = {
            "command": f"run forbidden{index * 5} now" if index % 4 == 0 else "run something harmless",
            "options": {"size": 2_000_000 if index % 3 == 0 else 10},
            "target": "staging",
            "labels": ["a", "b", f"label-{index}"],
            "paths": [f"/work/{index}/file.txt"],
        }
        context = PolicyContext(
            run_id="run", agent_id="agent", role="reviewer" if index % 2 else None, phase="build", depth=index % 3
        )
        requests.append((ToolCall(id=f"call-{index}", name=name, arguments=arguments), _spec(name), context))
    return requests


def _spec(name: str) -> ToolSpec:
    return ToolSpec(name=name, description=name)


def worst_rules() -> list[PolicyRule]:
    return [
        PolicyRule(
            id=f"rule-{index}",
            action=PolicyAction.DENY,
            tools=("shell:*",),
            conditions=(ArgCondition(path="command", op="matches", value=rf"\bforbidden{index}\b"),),
            priority=RULES - index,
        )
        for index in range(RULES)
    ]


def worst_request(command: str) -> list[Request]:
    context = PolicyContext(run_id="run", agent_id="agent")
    return [(ToolCall(id="call", name="shell:run", arguments={"command": command}), _spec("shell:run"), context)]


class _PathChecker:
    name = "paths"

    def check(self, call: ToolCall, spec: ToolSpec, context: PolicyContext) -> SafetyVerdict | None:
        paths = call.arguments.get("paths")
        if isinstance(paths, list) and any(isinstance(p, str) and p.startswith("/etc/") for p in paths):
            return SafetyVerdict(PolicyAction.DENY, "system path")
        return None


class _SizeChecker:
    name = "size"

    def check(self, call: ToolCall, spec: ToolSpec, context: PolicyContext) -> SafetyVerdict | None:
        return SafetyVerdict(PolicyAction.ASK, "large payload") if len(call.arguments) > 10 else None


def scenarios() -> dict[str, tuple[Callable[[], RulePolicyEngine], list[Request]]]:
    return {
        "typical": (lambda: RulePolicyEngine(typical_rules()), typical_requests()),
        "worst_no_match": (lambda: RulePolicyEngine(worst_rules()), worst_request("ls -la /work")),
        "worst_last_match": (lambda: RulePolicyEngine(worst_rules()), worst_request(f"forbidden{RULES - 1} x")),
        "typical_with_checkers": (
            lambda: RulePolicyEngine(typical_rules(), safety_checkers=[_PathChecker(), _SizeChecker()]),
            typical_requests(),
        ),
    }


def measure(
    build: Callable[[], RulePolicyEngine], requests: list[Request], runs: int, decisions: int
) -> dict[str, Any]:
    started = time.perf_counter()
    engine = build()
    build_ms = (time.perf_counter() - started) * 1e3
    started = time.perf_counter()
    outcomes = [engine.evaluate(*request).policy_decision.value for request in requests]
    first_call_us = (time.perf_counter() - started) * 1e6 / len(requests)
    batch = (requests * (decisions // len(requests) + 1))[:decisions]
    evaluate = engine.evaluate
    per_decision = []
    for _ in range(runs):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter_ns()
            for call, spec, context in batch:
                evaluate(call, spec, context)
            elapsed = time.perf_counter_ns() - started
        finally:
            gc.enable()
        per_decision.append(elapsed / 1e3 / decisions)
    return {
        "median_us": statistics.median(per_decision),
        "min_us": min(per_decision),
        "max_us": max(per_decision),
        "build_ms": build_ms,
        "first_call_us": first_call_us,
        "outcomes": {outcome: outcomes.count(outcome) for outcome in sorted(set(outcomes))},
    }


def report(runs: int, decisions: int) -> dict[str, Any]:
    results = {name: measure(build, requests, runs, decisions) for name, (build, requests) in scenarios().items()}
    return {
        "benchmark": "policy_decision",
        "rules": RULES,
        "runs": runs,
        "decisions_per_run": decisions,
        "scenarios": results,
        "target": {
            "us_per_decision_max": TARGET_US,
            "met": all(result["median_us"] <= TARGET_US for result in results.values()),
        },
        "versions": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "runtime-control": importlib.metadata.version("runtime-control"),
            "pydantic": importlib.metadata.version("pydantic"),
        },
    }


def print_human(result: dict[str, Any]) -> None:
    print(
        f"policy_decision: {result['rules']} rules, median of {result['runs']} runs x "
        f"{result['decisions_per_run']} decisions (python {result['versions']['python']})"
    )
    print(f"{'scenario':<24} {'us/decision':>11} {'min':>7} {'max':>7} {'build ms':>9} {'1st call us':>12}  outcomes")
    for name, data in result["scenarios"].items():
        print(
            f"{name:<24} {data['median_us']:>11.2f} {data['min_us']:>7.2f} {data['max_us']:>7.2f} "
            f"{data['build_ms']:>9.2f} {data['first_call_us']:>12.1f}  {data['outcomes']}"
        )
    target = result["target"]
    print(f"target: <= {target['us_per_decision_max']:.0f} us per decision: {'met' if target['met'] else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per scenario (default 7)")
    parser.add_argument("--decisions", type=int, default=20_000, help="decisions per run (default 20000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.decisions < 1:
        parser.error("--runs and --decisions must be >= 1")
    result = report(args.runs, args.decisions)
    if args.json:
        print(json.dumps(result))
    else:
        print_human(result)
    return 1 if args.check and not result["target"]["met"] else 0


if __name__ == "__main__":
    sys.exit(main())
