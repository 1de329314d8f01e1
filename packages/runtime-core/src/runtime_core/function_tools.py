"""Turn typed Python functions into tools with the [`tool`][runtime_core.function_tools.tool] decorator."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, cast, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError, create_model
from pydantic.json_schema import GenerateJsonSchema

from runtime_core._docstrings import parse_docstring
from runtime_core.exceptions import ToolDefinitionError, ToolExecutionError
from runtime_core.tools import TOOL_NAME_PATTERN, ToolConcurrency, ToolContext, ToolEffect, ToolErrorCode, ToolSpec

__all__ = ["FunctionTool", "tool"]

_NAME = re.compile(TOOL_NAME_PATTERN)


class _ToolSchema(GenerateJsonSchema):
    """JSON schema without per-field titles: models read descriptions, titles only add tokens."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


class FunctionTool:
    """A Python function exposed as a tool.

    The arguments are validated with a pydantic model derived from the signature; a parameter annotated
    with `ToolContext` receives the call's context and is hidden from the model. Synchronous functions
    run in a worker thread so they never block the event loop. Calling the object calls the function.
    """

    def __init__(
        self, func: Callable[..., Any], spec: ToolSpec, arguments: type[BaseModel], context_param: str | None
    ) -> None:
        self._func = func
        self._spec = spec
        self._is_async = inspect.iscoroutinefunction(func)
        self._arguments = arguments
        self._context_param = context_param
        self._validate = arguments.__pydantic_validator__.validate_python  # what `model_validate` calls
        hints = get_type_hints(func)
        returns = hints.get("return", Any)
        self._returns: TypeAdapter[Any] = TypeAdapter(returns)
        # A text result of a function declared to return `str` (or `Any`) is its own JSON form.
        self._text_is_json = returns is str or returns is Any
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", spec.name)

    @property
    def spec(self) -> ToolSpec:
        """The tool's specification."""
        return self._spec

    @property
    def function(self) -> Callable[..., Any]:
        """The wrapped function."""
        return self._func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the wrapped function directly (no validation, no context)."""
        return self._func(*args, **kwargs)

    async def invoke(self, arguments: Mapping[str, Any], context: ToolContext) -> JsonValue:
        """Validate `arguments`, run the function and return its result as JSON-compatible data.

        Raises:
            ToolExecutionError: ``INVALID_ARGUMENTS`` when validation fails, ``EXECUTION_FAILED`` when the
                function raises anything but a `ToolExecutionError` (which passes through).
        """
        try:
            parsed = self._validate(arguments if type(arguments) is dict else dict(arguments))
        except ValidationError as error:
            raise ToolExecutionError.invalid_arguments(self._spec.name, error) from None
        kwargs = dict(parsed.__dict__)  # the fields, as validated (the model has no extras)
        if self._context_param is not None:
            kwargs[self._context_param] = context
        try:
            if self._is_async:
                result = await self._func(**kwargs)
            else:
                result = await asyncio.to_thread(self._func, **kwargs)
        except ToolExecutionError as error:
            error.tool_name = error.tool_name or self._spec.name
            raise
        except Exception as error:
            raise ToolExecutionError(
                f"{type(error).__name__}: {error}", code=ToolErrorCode.EXECUTION_FAILED, tool_name=self._spec.name
            ) from error
        if type(result) is str and self._text_is_json:
            return result
        return cast(JsonValue, self._returns.dump_python(result, mode="json"))


def _arguments_model(func: Callable[..., Any], tool_name: str) -> tuple[type[BaseModel], str | None]:
    """Build the arguments model of `func`; return it and the name of its context parameter, if any."""
    try:
        hints = get_type_hints(func, include_extras=True)
    except NameError as error:
        raise ToolDefinitionError(
            f"cannot resolve the annotations of {tool_name}: {error}", tool_name=tool_name
        ) from None
    docs = parse_docstring(func.__doc__).params
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for name, param in inspect.signature(func).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise ToolDefinitionError(
                f"{tool_name}: parameter {name!r} must be a plain or keyword-only parameter", tool_name=tool_name
            )
        if name not in hints:
            raise ToolDefinitionError(f"{tool_name}: parameter {name!r} needs a type annotation", tool_name=tool_name)
        annotation = hints[name]
        if annotation is ToolContext:
            context_param = name
            continue
        default = ... if param.default is param.empty else param.default
        fields[name] = (annotation, Field(default, description=docs.get(name)))
    model = create_model(
        f"{tool_name.replace(':', '_')}_arguments",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )
    return model, context_param


def _build(
    func: Callable[..., Any],
    *,
    name: str | None,
    description: str | None,
    effect: ToolEffect,
    requires_confirmation: bool,
    category: str,
    concurrency: ToolConcurrency,
    timeout_s: float | None,
) -> FunctionTool:
    tool_name = name or f"local:{func.__name__}"
    if not _NAME.match(tool_name):
        raise ToolDefinitionError(
            f"tool name {tool_name!r} must have the form 'server:operation' (for example 'file:read')",
            tool_name=tool_name,
        )
    model, context_param = _arguments_model(func, tool_name)
    schema = model.model_json_schema(schema_generator=_ToolSchema)
    schema.pop("title", None)
    doc = parse_docstring(func.__doc__).description
    spec = ToolSpec(
        name=tool_name,
        description=description or doc or tool_name,
        parameters=schema,
        effect=effect,
        requires_confirmation=requires_confirmation,
        category=category,
        concurrency=concurrency,
        timeout_s=timeout_s,
    )
    return FunctionTool(func, spec, model, context_param)


@overload
def tool(func: Callable[..., Any], /) -> FunctionTool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    effect: ToolEffect = ToolEffect.UNSAFE,
    requires_confirmation: bool = False,
    category: str = "general",
    concurrency: ToolConcurrency = ToolConcurrency.PARALLEL,
    timeout_s: float | None = None,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    effect: ToolEffect = ToolEffect.UNSAFE,
    requires_confirmation: bool = False,
    category: str = "general",
    concurrency: ToolConcurrency = ToolConcurrency.PARALLEL,
    timeout_s: float | None = None,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Turn a typed function (sync or async) into a tool.

    The JSON schema of the arguments comes from the signature (types, defaults, ``Annotated`` pydantic
    constraints) and the Google-style docstring (the summary becomes the description, ``Args:`` entries
    become parameter descriptions)::

        @tool(name="math:add", effect=ToolEffect.NONE)
        def add(a: int, b: int = 1) -> int:
            \"\"\"Add two numbers.\"\"\"  # plus an Args: section describing a and b
            return a + b

    Args:
        func: The function, when used as ``@tool`` without arguments.
        name: ``server:operation`` name; default ``local:<function name>``.
        description: Overrides the docstring summary.
        effect: Side effects of the tool. Defaults to ``unsafe``: declare ``none`` or ``idempotent`` to
            allow re-running after a crash.
        requires_confirmation: Ask for approval before every call.
        category: Free-form grouping (``"file"``, ``"shell"``, ...).
        concurrency: ``exclusive`` keeps the tool out of parallel batches.
        timeout_s: Per-call timeout enforced by the pipeline.

    Raises:
        ToolDefinitionError: The name is malformed or the signature cannot be described as a schema.
    """

    def wrap(target: Callable[..., Any]) -> FunctionTool:
        return _build(
            target,
            name=name,
            description=description,
            effect=effect,
            requires_confirmation=requires_confirmation,
            category=category,
            concurrency=concurrency,
            timeout_s=timeout_s,
        )

    return wrap(func) if func is not None else wrap
