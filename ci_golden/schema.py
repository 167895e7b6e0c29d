"""JSON Schemas shipped inside the package, with validators built once per process."""

from __future__ import annotations

import functools
import json
import typing as t
from importlib import resources

if t.TYPE_CHECKING:
    from jsonschema.protocols import Validator

SchemaName = t.Literal["golden_values", "model_config", "project_config", "result"]


@functools.lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, t.Any]:
    text = resources.files("ci_golden").joinpath("schemas", f"{name}.schema.json").read_text("utf-8")
    schema: dict[str, t.Any] = json.loads(text)
    return schema


SCHEMA_NAMES: tuple[SchemaName, ...] = t.get_args(SchemaName)


@functools.lru_cache(maxsize=None)
def validator(name: str) -> Validator:
    """The Draft 2020-12 validator for one shipped schema, built once per process.

    Every shipped schema is registered under its ``$id``, so schemas can refer to each other.
    """
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    registry: Registry[t.Any] = Registry().with_resources(
        (load_schema(n)["$id"], Resource.from_contents(load_schema(n)))
        for n in SCHEMA_NAMES
        if resources.files("ci_golden").joinpath("schemas", f"{n}.schema.json").is_file()
    )
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    v: Validator = Draft202012Validator(schema, registry=registry)
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
