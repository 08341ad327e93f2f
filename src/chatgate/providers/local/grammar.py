"""llama.cpp grammars (GBNF) constraining the local model to JSON, a JSON schema or a tool call."""

from __future__ import annotations

import json
import math
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

from chatgate.protocol import ChatCompletionRequest, UnsupportedParameterError
from chatgate.protocol.chat import NamedToolChoice, _JsonObjectFormat, _JsonSchemaResponseFormat
from chatgate.providers.local.int_ranges import integer_range

__all__ = ["grammar_for", "tool_call_schema"]

# Free text for `tool_choice: auto`: anything that does not open a JSON object.
_TEXT_RULES = "text ::= [^{\\x00] [^\\x00]*\n"


def tool_call_schema(request: ChatCompletionRequest) -> dict[str, Any]:
    """JSON schema of one call to one of the request's tools (or the one `tool_choice` names)."""
    tools = request.tools or []
    if isinstance(request.tool_choice, NamedToolChoice):
        name = request.tool_choice.function.name
        tools = [t for t in tools if t.function.name == name]
    variants = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t.function.name},
                "arguments": t.function.parameters or {"type": "object"},
            },
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _schema_grammar(schema: dict[str, Any], param: str) -> str:
    ranges: list[str] = []
    try:
        marked = _mark_integer_ranges(schema, ranges)
        gbnf = json_schema_to_gbnf(json.dumps(marked))
    except Exception as exc:  # the converter raises bare exceptions on schemas it cannot express
        raise UnsupportedParameterError(
            f"This JSON schema cannot be enforced on the local model: {exc}", param=param
        ) from exc
    for index, expression in enumerate(ranges):
        gbnf = gbnf.replace(f'"\\"{_MARK}{index}\\""', f"({expression}) space")
    if ranges and "\nspace ::=" not in f"\n{gbnf}":
        gbnf += '\nspace ::= " "?\n'

    # JSON strings may not hold raw control characters; the converter's `char` rule allows them.
    return str(gbnf).replace('char ::= [^"\\\\]', 'char ::= [^"\\\\\\x7F\\x00-\\x1F]', 1)


_MARK = "__chatgate_integer_range_"


def _mark_integer_ranges(node: Any, ranges: list[str]) -> Any:
    """The schema with each bounded ``integer`` replaced by a marker constant (the converter
    ignores bounds), its range's GBNF kept in ``ranges`` to be put in the marker's place."""
    if isinstance(node, list):
        return [_mark_integer_ranges(item, ranges) for item in node]
    if not isinstance(node, dict):
        return node
    bounds = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
    if node.get("type") == "integer" and any(key in node for key in bounds):
        low, high = _integer_bounds(node)
        ranges.append(integer_range(low, high))
        return {"const": f"{_MARK}{len(ranges) - 1}"}
    return {key: _mark_integer_ranges(value, ranges) for key, value in node.items()}


def _integer_bounds(node: dict[str, Any]) -> tuple[int | None, int | None]:
    low: int | None = None
    high: int | None = None
    if isinstance(node.get("minimum"), int | float):
        low = math.ceil(node["minimum"])
    if isinstance(node.get("exclusiveMinimum"), int | float):
        low = max(low if low is not None else -(10**18), math.floor(node["exclusiveMinimum"]) + 1)
    if isinstance(node.get("maximum"), int | float):
        high = math.floor(node["maximum"])
    if isinstance(node.get("exclusiveMaximum"), int | float):
        high = min(high if high is not None else 10**18, math.ceil(node["exclusiveMaximum"]) - 1)
    return low, high


def grammar_for(request: ChatCompletionRequest) -> str | None:
    """The GBNF grammar the request needs, or None for free text."""
    if request.tools and request.tool_choice != "none":
        gbnf = _schema_grammar(tool_call_schema(request), "tools")
        if request.tool_choice in (None, "auto"):
            gbnf = gbnf.replace("root ::=", "call ::=", 1)
            gbnf = f"root ::= call | text\n{_TEXT_RULES}{gbnf}"
        return gbnf
    fmt = request.response_format
    if isinstance(fmt, _JsonObjectFormat):
        return _schema_grammar({"type": "object"}, "response_format")
    if isinstance(fmt, _JsonSchemaResponseFormat):
        schema = fmt.json_schema.schema_ or {"type": "object"}
        return _schema_grammar(schema, "response_format.json_schema.schema")
    return None
