"""A Jinja2 environment safe for templates written by people other than the operator.

Jinja's immutable sandbox stops templates from reaching Python internals or mutating values, but
not from exhausting the machine: ``{{ 'a' * 10**8 }}`` renders a 100 MB string, nested loops spin
for minutes, ``'a'.ljust(10**9)`` allocates a gigabyte. This environment adds caps:

- **values**: no string or list built by an operator (``*``, ``**``, ``+``, ``%``, ``~``), a
  filter or a call may exceed ``max_value`` items; exponents are capped, and so is every integer
  passed to a call (``ljust``, ``center``, ``range`` ...);
- **work**: every loop iteration and every call (macros included) spends one step of a per-render
  budget (``max_steps``), so no template runs long whatever it loops over;
- **output**: rendering stops once ``max_output`` characters are produced.

Breaking a cap raises ``TemplateLimitError``.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["BoundedEnvironment", "TemplateLimitError"]

_MAX_EXPONENT = 64
_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?|\{[^{}]*?:[^{}]*?(\d+)[^{}]*\}")


class TemplateLimitError(Exception):
    """A template broke one of the sandbox's caps."""


class _Budget:
    __slots__ = ("left",)

    def __init__(self, steps: int):
        self.left = steps


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "chatgate_template_budget", default=None
)


class _BoundedCodeGenerator(CodeGenerator):
    """Routes every ``for`` loop's iterable and every ``~`` concatenation through the
    environment, where template code cannot shadow or skip them."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        if not getattr(node, "_bounded", False):
            node.iter = nodes.Call(
                nodes.EnvironmentAttribute("bounded_iter"), [node.iter], [], None, None
            )
            node._bounded = True  # type: ignore[attr-defined]
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_value(")
        super().visit_Concat(node, frame)
        self.write(")")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(
        self, *, max_value: int = 100_000, max_steps: int = 10_000, max_output: int = 100_000
    ):
        super().__init__(autoescape=False, keep_trailing_newline=True)
        self.max_value = max_value
        self.max_steps = max_steps
        self.max_output = max_output
        self.globals["range"] = self._range
        self.filters = {name: self._checked_filter(f) for name, f in self.filters.items()}
        self.filters["replace"] = self._replace
        self.filters["center"] = self._checked_filter(self._width_checked(str.center))
        self.filters["indent"] = self._checked_filter(self._indent)

    # --- rendering -----------------------------------------------------------------------

    def render(self, source: str, variables: dict[str, Any]) -> str:
        """Render ``source`` with ``variables`` under every cap."""
        template = self.from_string(source)
        token = _budget.set(_Budget(self.max_steps))
        try:
            produced = 0
            parts: list[str] = []
            for piece in template.generate(variables):
                produced += len(piece)
                if produced > self.max_output:
                    raise TemplateLimitError(
                        f"the rendered text passed {self.max_output} characters"
                    )
                parts.append(piece)
            return "".join(parts)
        except RecursionError:
            raise TemplateLimitError("the template recursed too deeply") from None
        finally:
            _budget.reset(token)

    # --- caps ----------------------------------------------------------------------------

    def spend(self, steps: int = 1) -> None:
        budget = _budget.get()
        if budget is None:
            return
        budget.left -= steps
        if budget.left < 0:
            raise TemplateLimitError(f"the template took more than {self.max_steps} steps")

    def checked_value(self, value: Any) -> Any:
        if isinstance(value, str | bytes | list | tuple | dict | set) and (
            len(value) > self.max_value
        ):
            raise TemplateLimitError(f"a value in the template passed {self.max_value} items")
        return value

    def bounded_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.spend()
            yield item

    def _check_int(self, value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > self.max_value:
            raise TemplateLimitError(f"a number in the template passed {self.max_value}")

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise TemplateLimitError(f"exponents above {_MAX_EXPONENT} are not allowed")
        elif operator_ == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(count, int):
                    self.checked_value(range(len(sequence) * max(count, 0)))
        elif operator_ == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                self.checked_value(range(len(left) + len(right)))
        elif operator_ == "%" and isinstance(left, str):
            self._check_widths(left)
        result = super().call_binop(context, operator_, left, right)
        if operator_ == "**":
            self._check_int(result)
        return self.checked_value(result)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.spend()
        for value in (*args, *kwargs.values()):
            __self._check_int(value)
        return __self.checked_value(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        self._check_widths(str(getattr(value, "__self__", "")))
        return wrapped

    def _check_widths(self, text: str) -> None:
        for match in _WIDTH.finditer(text):
            for group in match.groups():
                if group == "*" or (group and int(group) > self.max_value):
                    raise TemplateLimitError("format widths are capped")

    def _range(self, *args: int) -> range:
        result = range(*args)
        return self.checked_value(result)  # type: ignore[no-any-return]

    def _checked_filter(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def checked(*args: Any, **kwargs: Any) -> Any:
            for value in args[1:] if args else ():
                self._check_int(value)
            for value in kwargs.values():
                self._check_int(value)
            return self.checked_value(function(*args, **kwargs))

        for attribute in ("jinja_pass_arg",):
            if hasattr(function, attribute):
                setattr(checked, attribute, getattr(function, attribute))
        return checked

    def _width_checked(self, function: Callable[..., str]) -> Callable[..., str]:
        def checked(value: str, width: int = 80) -> str:
            self._check_int(width)
            return function(str(value), width)

        return checked

    def _indent(self, value: str, width: int | str = 4, first: bool = False) -> str:
        pad = " " * width if isinstance(width, int) else str(width)
        self.checked_value(range(len(value) + len(pad) * (value.count("\n") + 1)))
        lines = str(value).split("\n")
        head = [pad + lines[0] if first else lines[0]]
        return "\n".join(head + [pad + line if line else line for line in lines[1:]])

    def _replace(self, value: str, old: str, new: str, count: int | None = None) -> str:
        value, old, new = str(value), str(old), str(new)
        hits = value.count(old) if old else len(value) + 1
        if count is not None:
            hits = min(hits, count)
        self.checked_value(range(len(value) + hits * max(len(new) - len(old), 0)))
        return value.replace(old, new, -1 if count is None else count)
