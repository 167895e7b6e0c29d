"""JSON Schemas shipped inside the package, with validators built once per process."""

from __future__ import annotations

import difflib
import functools
import json
import math
import typing as t
from importlib import resources

if t.TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

SchemaName = t.Literal["golden_values", "model_config", "project_config", "result"]
# Validators for one definition inside a shipped schema: name -> (schema, JSON pointer).
SUBSCHEMAS: dict[str, tuple[SchemaName, str]] = {
    "case_settings": ("model_config", "/$defs/ci_golden")
}


@functools.cache
def load_schema(name: str) -> dict[str, t.Any]:
    text = resources.files("ci_golden").joinpath(f"schemas/{name}.schema.json").read_text("utf-8")
    schema: dict[str, t.Any] = json.loads(text)
    return schema


SCHEMA_NAMES: tuple[SchemaName, ...] = t.get_args(SchemaName)


@functools.cache
def validator(name: str, fragment: str = "", *, strict_integers: bool = False) -> Validator:
    """The Draft 2020-12 validator for one shipped schema (or its ``fragment``, a JSON pointer
    such as ``/$defs/current``), built once per process.

    Every shipped schema is registered under its ``$id``, so schemas can refer to each other.
    With ``strict_integers``, ``integer`` means a JSON integer literal (not ``1.0``) and never a
    boolean, which JSON Schema cannot express. That the shipped schemas are themselves valid is
    checked by the tests, not at every start.
    """
    from jsonschema import Draft202012Validator, validators
    from referencing import Registry, Resource

    if name in SUBSCHEMAS:
        name, fragment = SUBSCHEMAS[name]
    registry: Registry[t.Any] = Registry().with_resources(
        (load_schema(n)["$id"], Resource.from_contents(load_schema(n))) for n in SCHEMA_NAMES
    )
    schema = load_schema(name)
    if fragment:
        schema = {"$ref": schema["$id"] + "#" + fragment}
    cls = Draft202012Validator
    if strict_integers:
        checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", lambda _, x: type(x) is int)
        cls = validators.extend(Draft202012Validator, type_checker=checker)
    v: Validator = cls(schema, registry=registry)
    return v


def json_pointer(path: t.Iterable[t.Any]) -> str:
    """``$["lm loss"].values["15"]``-style location of a jsonschema error path."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            out += f".{part}"
        else:
            out += "[" + json.dumps(part) + "]"
    return out


def first_error(name: str, instance: t.Any) -> tuple[str, str] | None:
    """``(message, location)`` of the first schema error, or None when ``instance`` is valid.

    An unknown key gets a "did you mean" hint, since a typo must never be silently ignored.
    """

    errors = sorted(validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    err = errors[0]
    message = schema_message(err)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        props = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
        unknown = [k for k in err.instance if k not in props]
        if unknown:
            message = f"unknown key {unknown[0]!r}{did_you_mean(unknown[0], props)}"
    elif err.validator == "enum" and isinstance(err.instance, str):
        allowed = [v for v in t.cast("list[t.Any]", err.validator_value) if isinstance(v, str)]
        message = f"unknown value {err.instance!r}{did_you_mean(err.instance, allowed)}"
    return message, json_pointer(err.absolute_path)


def schema_message(err: ValidationError) -> str:
    """The message of a schema error; a NaN or infinity (YAML's ``.nan``, ``.inf``) is said so,
    whichever keyword refused it."""
    if isinstance(err.instance, float) and not math.isfinite(err.instance):
        return f"{err.instance} is not a finite number"
    return err.message


def did_you_mean(word: str, choices: t.Iterable[str], *, listed: int = 40) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, else the list of choices (their number
    when there are more than ``listed``)."""
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if len(options) > listed:
        return f" ({len(options)} known, none close)"
    return f" (known: {', '.join(options)})" if options else ""
