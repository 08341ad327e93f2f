"""The template sandbox: ordinary templates render; templates that would exhaust memory or CPU
stop at a cap, quickly, instead of rendering."""

from __future__ import annotations

import time

import pytest
from jinja2.exceptions import SecurityError

from chatgate.prompts.sandbox import BoundedEnvironment, TemplateLimitError

ENV = BoundedEnvironment()


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        ("Hello {{ name }}!", {"name": "Ada"}, "Hello Ada!"),
        ("{% for x in xs %}{{ loop.index }}:{{ x }} {% endfor %}", {"xs": ["a", "b"]}, "1:a 2:b "),
        ("{% if vip %}VIP{% else %}standard{% endif %}", {"vip": False}, "standard"),
        ("{{ 'ab' * 3 }}|{{ 2 ** 10 }}|{{ '%3s' % 'x' }}", {}, "ababab|1024|  x"),
        (
            "{{ 'x'|center(5) }}|{{ 'a b'|replace(' ', '_') }}|{{ xs|join(',') }}",
            {"xs": [1, 2]},
            "  x  |a_b|1,2",
        ),
        ("{{ '{:>3}'.format('z') }}|{{ 'a\nb'|indent(2, true) }}", {}, "  z|  a\n  b"),
        (
            "{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(1) }}{{ range(3)|list }}",
            {},
            "<1>[0, 1, 2]",
        ),
    ],
)
def test_ordinary_templates_render(
    source: str, variables: dict[str, object], expected: str
) -> None:
    assert ENV.render(source, variables) == expected


ATTACKS = [
    "{{ 'a' * 10**8 }}",
    "{{ 'a' * 100000 * 3 }}",
    "{{ [1] * 1000000 }}",
    "{{ 9 ** 9 ** 9 }}",
    "{{ 'a'.ljust(1000000000) }}",
    "{{ 'x'|center(999999999) }}",
    "{{ 'x'|indent(999999999) }}",
    "{{ 'x'|wordwrap(999999999) }}",
    "{{ '%999999999s' % 'x' }}",
    "{{ '{:>999999999}'.format('x') }}",
    "{{ '{:>{w}}'.format('x', w=999999999) }}",
    "{{ ('a' * 50000)|replace('a', 'bbbbbbbbbbbbbbbbbbbb') }}",
    "{{ range(10**6)|list }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{% for x in range(99999) %}{{ 'xxxxxxxxxx' }}{% endfor %}",
    "{% set s = 'a' * 90000 %}{{ s ~ s }}",
]


@pytest.mark.parametrize("source", ATTACKS)
def test_attacks_stop_at_a_cap(source: str) -> None:
    started = time.process_time()
    with pytest.raises(TemplateLimitError):
        ENV.render(source, {})
    assert time.process_time() - started < 2.0  # CPU seconds: a cap, not a timeout


@pytest.mark.parametrize(
    "source", ["{{ ''.__class__.__mro__ }}", "{% set xs = [] %}{{ xs.append(1) }}"]
)
def test_no_escape_from_the_sandbox(source: str) -> None:
    with pytest.raises(SecurityError):
        ENV.render(source, {})
