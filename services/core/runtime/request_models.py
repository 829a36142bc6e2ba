"""The base of every request body of every service: core.text's rule applied to each string.

Safe by default: every string field, and every string inside a list or a dict field (keys
too), is checked, so a new field cannot forget it. A field whose type is marked `FREE_TEXT`
(`Annotated[str, ..., FREE_TEXT]`) may also hold tabs and line feeds. Strings in a nested
model are checked by that model, so the error names the nested field (applicant.full_name).
"""

from __future__ import annotations

from functools import cache
from typing import Any, get_args

from pydantic import BaseModel, ValidationInfo, ValidatorFunctionWrapHandler, field_validator
from pydantic_core import PydanticCustomError

from services.core.text import PROBLEM, forbidden_character


class _FreeText:
    def __repr__(self) -> str:
        return "FREE_TEXT"


FREE_TEXT = _FreeText()
"""Marks a free-text string type (a reason, a note): tab and line feed are allowed in it."""


class RequestModel(BaseModel):
    @field_validator("*", mode="wrap")
    @classmethod
    def _no_control_characters(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        free_text = info.field_name in _free_text_fields(cls)
        if isinstance(value, str):
            # Before the field's own rules, which could mask the character (a phone parser
            # that skips it, a pattern whose message would not say what is wrong).
            _refuse_controls(value, free_text)
            return handler(value)
        validated = handler(value)
        _refuse_controls(validated, free_text)
        return validated


def _refuse_controls(value: Any, free_text: bool) -> None:
    """Raise on the first refused character in a string, or in the strings of a list or dict."""
    if isinstance(value, str):
        char = forbidden_character(value, free_text=free_text)
        if char:
            raise PydanticCustomError(
                "control_character", f"{PROBLEM} (found {{char}})", {"char": char}
            )
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _refuse_controls(item, free_text)
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_controls(key, free_text=False)
            _refuse_controls(item, free_text)
    # A nested RequestModel has checked its own fields; numbers and the like hold no text.


@cache
def _free_text_fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        name
        for name, field in model.model_fields.items()
        if FREE_TEXT in field.metadata or _marked(field.annotation)
    )


def _marked(annotation: Any) -> bool:
    """FREE_TEXT anywhere in the type: `Text`, `Text | None`, `list[Text]`."""
    if FREE_TEXT in getattr(annotation, "__metadata__", ()):
        return True
    return any(_marked(arg) for arg in get_args(annotation))
