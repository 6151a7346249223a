"""The file formats as pydantic models, and pydantic's errors as one line naming the field.

`ConstitutionFile` is the native format (YAML or JSON); `cai constitution schema` prints its JSON
Schema. The foreign formats (the Hugging Face recipe's JSON, Anthropic's prompt files) have their
own small models here; the loaders convert each into a `ConstitutionFile`, so every constitution,
whatever its file, is checked by the same model before the stages see it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ..errors import ConstitutionError

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
When = Literal["always", "refused", "answered"]

# strict: a number or a list where text belongs is an error, never silently str()-ed.
_NATIVE = ConfigDict(extra="forbid", strict=True, frozen=True)
_FOREIGN = ConfigDict(extra="ignore", strict=True, frozen=True)


class CritiqueSpec(BaseModel):
    """A critique request and its revision request."""

    model_config = _NATIVE
    id: Text = Field(description="Unique among the critiques; recorded in each round.")
    critique: Text = Field(description="Asked after the model's response: what is wrong with it?")
    revision: Text = Field(description="Asked after the critique: rewrite the response.")
    when: When = Field(
        "always",
        description="always; refused: only for responses the refusal detector labels refusal, deflection or "
        "partial; answered: only for responses it labels answer.",
    )


class ComparisonSpec(BaseModel):
    """A multiple-choice question for the judge; options (A) and (B) follow it."""

    model_config = _NATIVE
    id: Text
    question: Text


class MessageSpec(BaseModel):
    model_config = _NATIVE
    role: Literal["user", "assistant"]
    content: Text


class FewShotSpec(BaseModel):
    """A worked example: a conversation, its response, a critique and a revision."""

    model_config = _NATIVE
    prompt: Text
    response: Text
    critique_request: Text
    critique: Text
    revision_request: Text
    revision: Text
    history: list[MessageSpec] | None = Field(None, description="Earlier turns before `prompt`.")


class ConstitutionFile(BaseModel):
    """A constitution in cai's native format."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, title="cai constitution")
    name: Text
    description: Text | None = None
    critiques: list[CritiqueSpec] = Field(default_factory=list)
    comparisons: list[ComparisonSpec] = Field(default_factory=list)
    few_shot: list[FewShotSpec] | None = None


# --------------------------------------------------------------------------- foreign formats


class HFPrinciple(BaseModel):
    model_config = _FOREIGN
    critic: Text
    revision: Text


class HFMessage(BaseModel):
    model_config = _FOREIGN
    role: str
    content: Text


class HFRecipe(BaseModel):
    """The Hugging Face CAI recipe's constitution JSON (llm-swarm, alignment-handbook)."""

    model_config = _FOREIGN
    constitutions: list[HFPrinciple]
    system_chat: list[list[HFMessage]] | None = None


class AnthropicCritique(BaseModel):
    """One entry of Anthropic's CritiqueRevisionInstructions.json."""

    model_config = _FOREIGN
    prompt: Any
    edit_request: Text


NATIVE_KEYS = tuple(ConstitutionFile.model_fields)


def json_schema() -> dict:
    """The JSON Schema of the native format, for editors and `cai constitution schema`."""
    schema = ConstitutionFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


# --------------------------------------------------------------------------- errors


def tname(v: Any) -> str:
    if v is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(v), type(v).__name__
    )


def field_path(loc: tuple) -> str:
    """('critiques', 3, 'revision') -> 'critiques[3].revision'; (1,) -> '[1]'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(model: type[BaseModel] | None, loc: tuple) -> type[BaseModel] | None:
    """The model class that owns the last key of LOC (to list its fields in an 'unknown key' message)."""
    import typing

    for part in loc[:-1]:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        model = None
        stack = [ann]
        while stack:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                model = t
                break
            stack.extend(typing.get_args(t))
    return model


def validate(model: type[BaseModel], data: Any, shown: str, prefix: tuple = ()):
    """MODEL validated from DATA, or a ConstitutionError naming SHOWN, the field path and what was expected."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConstitutionError(describe(exc, model, shown, prefix)) from None


def describe(exc: ValidationError, model: type[BaseModel], shown: str, prefix: tuple = ()) -> str:
    errors = exc.errors(include_url=False)
    err = errors[0]
    # A misspelt key shows up as "unknown key" and as "missing" for the key it should have been: name the typo.
    typo = [e for e in errors if e["type"] == "extra_forbidden" and tuple(e["loc"])[:-1] == tuple(err["loc"])[:-1]]
    if err["type"] == "missing" and typo:
        err = typo[0]
    loc = tuple(err["loc"])
    kind, value = err["type"], err.get("input")
    path = field_path(prefix + loc) or "(top level)"
    if kind == "missing":
        reason = "missing"
    elif kind == "extra_forbidden":
        owner = _model_at(model, loc)
        expected = f" (expected: {', '.join(owner.model_fields)})" if owner is not None else ""
        reason = f"unknown key{expected}"
    elif kind in ("string_type", "string_too_short"):
        got = "an empty string" if isinstance(value, str) else tname(value)
        reason = f"expected a non-empty string, got {got}"
    elif kind == "list_type":
        reason = f"expected a list, got {tname(value)}"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        reason = f"expected a mapping, got {tname(value)}"
    elif kind == "literal_error":
        reason = f"expected {err['ctx']['expected']}, got {value!r}"
    else:
        reason = err["msg"]
    return f"{shown}: {path}: {reason}"
