"""The allow-lists of rules.yml, which the template's copier.yml validators read too (through
rules.jinja): one definition of what each answer and each .env setting may hold."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

RULES_FILE = Path(__file__).with_name("rules.yml")


@functools.cache
def loaded() -> dict[str, Any]:
    """rules.yml, parsed once."""
    import yaml

    return yaml.load(RULES_FILE.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.cache
def pattern(name: str) -> re.Pattern[str]:
    """A rule's regular expression: its pieces joined, compiled."""
    spec = loaded()["rules"][name]
    return re.compile("".join(spec.get("refuse") or spec["require"]))


def problem(value: str, *names: str) -> str:
    """The message of the first rule (or group of rules) that `value` breaks, or ""."""
    rules, groups = loaded()["rules"], loaded()["groups"]
    for rule in (rule for name in names for rule in groups.get(name, [name])):
        if (pattern(rule).search(value) is not None) == ("refuse" in rules[rule]):
            return rules[rule]["message"]
    return ""
