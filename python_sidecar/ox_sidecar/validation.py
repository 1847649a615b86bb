"""Request validation errors as sentences that state the rule, for the
problem+json `detail` and its `errors` list (one entry per field)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# What a pattern means, for the fields that have one.
PATTERNS = {
    "symbol": "a ticker: a letter, then up to 11 letters, digits, '.' or '-'",
    "otp": "the 6-digit code from the authenticator app",
    "email": "an email address (name@domain.tld)",
    "sku": "letters, digits, '_' or '-'",
    "ad_id": "lower-case letters, digits or '-'",
}


def _rule(kind: str, name: str, where: str, ctx: dict[str, Any], msg: str) -> str:
    if kind == "missing":
        if where == "header":
            return f"the {name} header is required"
        if name == "body":
            return "a JSON body is required"
        return f"{name} is required"
    if kind == "literal_error":
        return f"{name} must be {ctx.get('expected')}"
    if kind == "string_too_short":
        n = ctx.get("min_length")
        return f"{name} must not be empty" if n == 1 else f"{name} must be at least {n} characters"
    if kind == "string_too_long":
        return f"{name} must be at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"{name} must be {PATTERNS.get(name, 'of the form ' + str(ctx.get('pattern')))}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "less_than_equal": ("at most", "le"),
        "greater_than": ("more than", "gt"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"{name} must be {words} {ctx.get(key)}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{name} must be a whole number"
    if kind.startswith("date_"):
        return f"{name} must be a date (YYYY-MM-DD)"
    if kind == "json_invalid":
        return "the body is not valid JSON"
    if kind in ("model_attributes_type", "dict_type"):
        return "the body must be a JSON object"
    if kind == "string_type":
        return f"{name} must be a string"
    return f"{name}: {msg}"


def explain(errors: Sequence[Any]) -> tuple[str, list[dict[str, str]]]:
    """The detail sentence and the per-field list for FastAPI's errors."""
    items: list[dict[str, str]] = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        where = loc[0] if loc and loc[0] in ("body", "query", "path", "header") else ""
        name = ".".join(loc[1:] if where else loc) or where or "request"
        rule = _rule(
            str(error.get("type", "")), name, where, error.get("ctx") or {}, str(error.get("msg"))
        )
        items.append({"field": name, "in": where, "rule": rule})
    detail = "; ".join(i["rule"] for i in items) or "The request is not valid"
    return detail, items
