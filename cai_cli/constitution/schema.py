"""The file formats as pydantic models, and pydantic's errors as one line naming the field.

`ConstitutionFile` is the native list format (YAML or JSON); `DocumentHeader` is the header of a Markdown
constitution (its YAML front matter, or the sidecar file beside it); `cai constitution schema [list|document]`
prints either's JSON Schema. The foreign formats (the Hugging Face recipe's JSON, Anthropic's prompt files) have their
own small models here; the loaders convert each into a `ConstitutionFile`, so every constitution,
whatever its file, is checked by the same model before the stages see it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from ..errors import ConstitutionError
from .model import Shape

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
When = Literal["always", "refused", "answered", "operator", "no-operator"]
Principal = Literal["operator", "user"]
WHEN_HELP = (
    "always; refused: only for responses the refusal detector labels refusal, deflection or partial; answered: only "
    "for responses it labels answer; operator: only where the row has a system message (an operator's instructions); "
    "no-operator: only where it has none."
)
TIER_HELP = "A tier named in `priorities` (highest first); the judge will weigh verdicts by tier."

# strict: a number or a list where text belongs is an error, never silently str()-ed.
_NATIVE = ConfigDict(extra="forbid", strict=True, frozen=True)
_FOREIGN = ConfigDict(extra="ignore", strict=True, frozen=True)


class CritiqueSpec(BaseModel):
    """A critique request and its revision request."""

    model_config = _NATIVE
    id: Text = Field(description="Unique among the critiques; recorded in each round.")
    critique: Text = Field(description="Asked after the model's response: what is wrong with it?")
    revision: Text = Field(description="Asked after the critique: rewrite the response.")
    when: When = Field("always", description=WHEN_HELP)
    tier: Text | None = Field(None, description=TIER_HELP)


class ComparisonSpec(BaseModel):
    """A multiple-choice question for the judge; options (A) and (B) follow it."""

    model_config = _NATIVE
    id: Text
    question: Text
    tier: Text | None = Field(None, description=TIER_HELP)


class HardConstraintSpec(BaseModel):
    """A line no answer may cross; checked on every answer, never drawn. A bare string is its text."""

    model_config = _NATIVE
    id: Text | None = Field(None, description="Default: a slug of its first words.")
    text: Text


def _constraint_items(value: Any) -> Any:
    if isinstance(value, list):
        return [{"text": v} if isinstance(v, str) else v for v in value]
    return value


class BehaviourSpec(BaseModel):
    """An instructable behaviour: on or off by default, switched per row by the principals allowed to."""

    model_config = _NATIVE
    id: Text = Field(description="What a system prompt or a user turn names to switch it: `behaviour <id>: on|off`.")
    description: Text = Field(description="What the assistant does when it is on, in a sentence (shown to the critic and the judge).")
    default: bool = Field(description="on (true) or off (false) where nobody switches it.")
    changed_by: list[Principal] = Field(
        default_factory=lambda: list[Principal](["operator"]), description="Who may switch it: operator (the system message, or the row's `behaviours` field), user.")
    section: Text | None = Field(None, description="The section (id, or the unique end of one) that describes it.")


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
    priorities: list[Text] = Field(default_factory=list, description="Tier names, highest first: [safe, ethical, guidelines, helpful].")
    hard_constraints: list[HardConstraintSpec] = Field(default_factory=list, description="Lines no answer may cross (strings or {id, text}).")
    behaviours: list[BehaviourSpec] = Field(default_factory=list, description="Instructable behaviours: defaults an operator or user may switch per row.")

    _items = field_validator("hard_constraints", mode="before")(_constraint_items)


class SectionSpec(BaseModel):
    """What the header says about one section (and, unless they say otherwise, the sections under it).
    A bare string is its tier."""

    model_config = _NATIVE
    tier: Text | None = Field(None, description=TIER_HELP)
    when: When | None = Field(None, description=WHEN_HELP)
    route: bool | None = Field(None, description="false: never drawn for a critique (an introduction, a table of contents).")


class DocumentHeader(BaseModel):
    """The header of a Markdown constitution: YAML front matter, or `<stem>.header.yaml` beside the document."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, title="cai document constitution header")
    name: Text | None = Field(None, description="Default: the file's stem.")
    description: Text | None = None
    priorities: list[Text] = Field(default_factory=list, description="Tier names, highest first: [safe, ethical, guidelines, helpful].")
    sections: dict[str, SectionSpec] = Field(
        default_factory=dict,
        description="Section id (the heading path as a slug, or its unique last part(s)) -> tier, or {tier, when, route}.",
    )
    hard_constraints: str | list[HardConstraintSpec] | None = Field(
        None, description="The section whose bullets are the hard constraints (its id), or a list of them."
    )
    comparisons: list[ComparisonSpec] = Field(default_factory=list, description="Questions for the judge, as in a list constitution.")
    few_shot: list[FewShotSpec] | None = None
    behaviours: list[BehaviourSpec] = Field(default_factory=list, description="Instructable behaviours: defaults an operator or user may switch per row.")

    @field_validator("sections", mode="before")
    @classmethod
    def _tier_strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({"tier": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value

    @field_validator("hard_constraints", mode="before")
    @classmethod
    def _constraints(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, (str, list)):
            raise ValueError(f"expected a section id or a list of constraints, got {tname(value)}")
        return _constraint_items(value)


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


def json_schema(shape: Shape = Shape.list) -> dict:
    """The JSON Schema of the native list format, or of a document's header, for editors and `cai constitution schema`."""
    schema = (ConstitutionFile if shape is Shape.list else DocumentHeader).model_json_schema()
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
            continue  # a mapping's key (sections.<id>): the model is the mapping's value type
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


def _union_tag(part: Any) -> bool:
    return isinstance(part, str) and (part == "str" or "[" in part)


def describe(exc: ValidationError, model: type[BaseModel], shown: str, prefix: tuple = ()) -> str:
    errors = exc.errors(include_url=False)
    err = errors[0]
    # a value that fits no member of a union fails once per member: report the member it got furthest into
    tagged = [e for e in errors if any(_union_tag(p) for p in e["loc"])]
    if tagged:
        err = max(tagged, key=lambda e: len(e["loc"]))
    # A misspelt key shows up as "unknown key" and as "missing" for the key it should have been: name the typo.
    typo = [e for e in errors if e["type"] == "extra_forbidden" and tuple(e["loc"])[:-1] == tuple(err["loc"])[:-1]]
    if err["type"] == "missing" and typo:
        err = typo[0]
    # a union's member names ("str", "list[HardConstraintSpec]") are not fields: leave them out of the path
    loc = tuple(p for p in err["loc"] if not _union_tag(p))
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
    elif kind == "value_error":
        reason = str(err["ctx"]["error"])
    elif kind == "bool_type":
        reason = f"expected true or false, got {tname(value)}"
    else:
        reason = err["msg"]
    return f"{shown}: {path}: {reason}"
