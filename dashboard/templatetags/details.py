"""Template filters that keep internal values off the page: `{{ delay_s|duration }}` reads
"6 d 5 h", `{{ entry.action|words }}` "version registered" for "version_registered",
`{% mapping_table row.features %}` a dict as a small table, `{{ entry|audit_changes }}` the
fields an audit entry changed, before and after."""

from __future__ import annotations

import json

from django import template

from common.time import duration_words

register = template.Library()


DASH = "\u2013"  # what a missing value reads as


@register.filter
def duration(seconds: float | None) -> str:
    return DASH if seconds is None else duration_words(float(seconds))


@register.filter
def words(value: str | None) -> str:
    """An internal name in words: "has_lineage" reads "has lineage", "Version.register"
    "Version register"."""
    return "" if value is None else str(value).replace("_", " ").replace(".", " ")


def shown(value) -> str:
    """One value of a mapping as text: nested ones compact JSON, nothing as a dash."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(shown(v) for v in value) or DASH
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


@register.inclusion_tag("dashboard/includes/mapping.html")
def mapping_table(mapping) -> dict:
    """A dict as rows of name and value; anything else as its text."""
    if not isinstance(mapping, dict):
        return {"text": DASH if mapping in (None, "") else shown(mapping)}
    return {"rows": [(name, shown(value)) for name, value in sorted(mapping.items())]}


@register.filter
def audit_changes(entry) -> list[dict]:
    """The fields of an audit entry, what each was and became (blank where the entry has no
    before, as on a creation, or no after), the changed ones marked."""
    sides = (entry.before, entry.after)
    if not all(side is None or isinstance(side, dict) for side in sides):
        return [change_row("value", *sides, present=(True, True))]
    before, after = (side or {} for side in sides)
    present = tuple(side is not None for side in sides)
    names = sorted(set(before) | set(after))
    return [change_row(name, before.get(name), after.get(name), present=present) for name in names]


def change_row(field: str, before, after, *, present: tuple[bool, bool]) -> dict:
    return {
        "field": words(field),
        "before": shown(before) if present[0] else "",
        "after": shown(after) if present[1] else "",
        "changed": all(present) and before != after,
    }


@register.filter
def keys_of(rows, field: str) -> list[str]:
    """The names in one dict field across rows (features, values): a table's columns."""
    return sorted({name for row in rows for name in (row.get(field) or {})})


@register.filter
def item(mapping, name: str) -> str:
    """mapping[name] as text, a dash when it is missing."""
    return shown((mapping or {}).get(name))
