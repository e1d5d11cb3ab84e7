"""The value types of the run config's keys (training/config.py declares the keys): what a key may hold,
and checks that say what was allowed when they fail (config.py completes each into one line)."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator, Strict, WithJsonSchema
from pydantic_core import PydanticCustomError, core_schema

from latentpaint.errors import LatentpaintError
from latentpaint.models.limits import check_generator_args


# -- value types: what a key may hold; a check that fails says what was allowed -------------------------
def refuse(allowed: str) -> PydanticCustomError:
    """A check's error: `allowed` completes "config key 'a.b' must be ...", the value follows."""
    return PydanticCustomError("config_allowed", allowed)


def rule(sentence: str) -> PydanticCustomError:
    """An error that is a sentence of its own (one key against another, a generator argument)."""
    return PydanticCustomError("config_rule", sentence)


@dataclass(frozen=True)
class OneOf:
    """`Annotated[str, OneOf(values)]`: one of `values`, a collection or a function that lists them (a
    registry that may grow), asked when a value is checked and when the schema is printed."""

    values: Callable[[], Iterable[str]] | Iterable[str]
    note: str = ""

    def names(self) -> list[str]:
        return list(self.values() if callable(self.values) else self.values)

    def check(self, value: str) -> str:
        if value not in self.names():
            raise refuse("one of " + ", ".join(self.names()) + (f" ({self.note})" if self.note else ""))
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict:
        return {**handler(schema), "enum": self.names()}


def choice(values: Callable[[], Iterable[str]] | Iterable[str], note: str = "") -> Any:
    return Annotated[str, OneOf(values, note)]


def count(lo: int, hi: int | None = None) -> Any:
    return Annotated[int, Field(ge=lo, le=hi)]


def key(default: Any, description: str) -> Any:
    return Field(default, description=description)


Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]  # a loss weight; 0 leaves its term out
Rate = Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Fraction = Annotated[float, Strict(), Field(ge=0, lt=1, allow_inf_nan=False)]  # decays, Adam's betas
Text = Annotated[str, Field(pattern=r"\S")]
Workers = Annotated[int, Field(ge=0, le=256)] | Literal["auto"]  # auto: data/datamodule.py auto_workers
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")  # what training runs in (Lightning's names)
PRECISION_ALIASES = {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed"}  # YAML reads 32, 16 as ints


def _precision(value: Any) -> Any:
    name = str(value) if type(value) is int else value
    if name in ("16-true", "bf16-true"):
        raise refuse(
            f"one of {', '.join(PRECISIONS)} ({name} holds the weights themselves in half precision, where "
            "small Adam updates round away; -mixed keeps float32 weights)"
        )
    return PRECISION_ALIASES.get(name, name) if isinstance(name, str) else name


def accelerators() -> list[str]:
    return ["auto", "cpu", "gpu", "cuda", "mps"] + (["tpu"] if importlib.util.find_spec("torch_xla") else [])


def _devices(value: Any) -> Any:
    if value == "auto" or (type(value) is int and (value >= 1 or value == -1)):
        return value
    if isinstance(value, list) and value and all(type(v) is int and v >= 0 for v in value):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d+(,\d+)*,?", value.strip()):
        return value
    raise refuse("a number of devices >= 1, -1, 'auto', a list of device indices or '0,1'")


def _generator_args(value: dict) -> dict:
    try:  # the ranges of configs read from files (models/limits.py)
        check_generator_args(value, "model.overrides")
    except LatentpaintError as exc:
        raise rule(str(exc).removeprefix("model.overrides: ")) from None
    return value


Precision = Annotated[str, BeforeValidator(_precision), OneOf(PRECISIONS)]
DEVICE_FORMS = [{"type": "integer"}, {"type": "string"}, {"type": "array", "items": {"type": "integer"}}]
Devices = Annotated[Any, PlainValidator(_devices), WithJsonSchema({"anyOf": DEVICE_FORMS})]
GeneratorArgs = Annotated[dict[str, Any], AfterValidator(_generator_args)]
