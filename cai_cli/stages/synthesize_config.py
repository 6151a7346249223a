"""What `cai synthesize` works from: the passages and hard constraints it writes requests for (targets), the examples
it shows (--examples), and its options (SynthesizeConfig)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..constitution import Constitution
from ..constitution.requests import CONSTRAINT_PREFIX
from ..errors import CaiError, InputError
from ..rows import FieldProblem, check_conversation, conversation
from .dedupe import DEFAULT_SIMILARITY
from .synthesize_prompts import Kind

__all__ = ["Example", "SynthesizeConfig", "Target", "example_kind", "load_examples", "prompt_rows", "request_text", "synthesize_config", "targets"]


@dataclass(frozen=True)
class Target:
    """What requests are written for: a routed passage of a document, a principle of a list, or a hard constraint
    ("hard-constraint:<id>", as critique rounds name it). `id` and `hash` go into each row as `passage`, `passage_hash`."""

    id: str
    hash: str
    what: str  # "passage" | "principle" | "hard constraint"
    text: str
    heading: str | None = None
    tier: str | None = None


def targets(constitution: Constitution) -> list[Target]:
    """Every routed passage (a document) or critique principle (a list), then every hard constraint, in order."""
    out: list[Target] = []
    for p in constitution.critiques:
        if constitution.is_document and p.passage is not None:
            passage = constitution.passage_by_id(p.passage)
            out.append(Target(passage.id, passage.hash, "passage", passage.text, passage.heading, passage.tier))
        else:
            out.append(Target(p.id, p.hash, "principle", p.critique, None, p.tier))
    for h in constitution.hard_constraints:
        tier = constitution.section_by_id(h.section).tier if h.section is not None else None
        out.append(Target(f"{CONSTRAINT_PREFIX}{h.id}", h.hash, "hard constraint", " ".join(h.text.split()), None, tier))
    return out


def request_text(row: dict) -> str:
    """What a prompt row asks, as one text: its prompt, or the user turns of its messages."""
    return "\n".join(m["content"] for m in conversation(row) if m["role"] == "user")


@dataclass(frozen=True)
class Example:
    """A request shown to the model as an example of its kind (--examples): its text, kind and where it was read."""

    text: str
    kind: Kind
    where: str


def example_kind(row: dict) -> Kind:
    """An example row's kind: its `kind`; else as `cai eval` splits prompt sets (`eval_set`, else `risky_looking`:
    true is a look-alike, false benign; no marker is red-team, here harmful)."""
    if "kind" in row:
        try:
            return Kind(row["kind"])
        except ValueError:
            raise FieldProblem("kind", f"expected one of {', '.join(k.value for k in Kind)}, got {row['kind']!r}") from None
    if isinstance(row.get("eval_set"), str) and row["eval_set"].lower().replace("-", "_") in ("benign", "helpful"):
        return Kind.lookalike if row.get("risky_looking") is True else Kind.benign
    if "eval_set" not in row and isinstance(row.get("risky_looking"), bool):
        return Kind.lookalike if row["risky_looking"] else Kind.benign
    return Kind.harmful


def prompt_rows(path: str, what: str):
    """(line, row) of a prompt file, read strictly: the first bad line or row stops with one line naming it."""
    from ..jsonl import display_name, read_lines

    name = display_name(path)
    found = read_lines(path)
    for item in found:
        if item.error is not None:
            raise item.error
        assert item.row is not None
        try:
            check_conversation(item.row)
        except FieldProblem as problem:
            raise InputError(f"{problem.message} ({what})", file=name, line=item.line, field=problem.field) from None
        yield name, item.line, item.row
    if not found:
        raise CaiError(f"{name}: no rows ({what})")


def load_examples(path: str) -> list[Example]:
    out = []
    for name, line, row in prompt_rows(path, "--examples: prompt rows, each with an optional `kind`"):
        try:
            kind = example_kind(row)
        except FieldProblem as problem:
            raise InputError(problem.message, file=name, line=line, field=problem.field) from None
        out.append(Example(request_text(row), kind, f"{name}:{line}"))
    return out


@dataclass
class SynthesizeConfig:
    kinds: tuple[Kind, ...] = tuple(Kind)
    per_passage: int = 2
    domain: str | None = None
    examples: list[Example] = field(default_factory=list)
    examples_source: str | None = None
    exclude: list[str] = field(default_factory=list)  # prompt files whose near-duplicates are left out
    similarity: float = DEFAULT_SIMILARITY
    passage_tokens: int | None = None
    reuse: list[str] = field(default_factory=list)  # earlier runs' OUT and OUT.dropped.jsonl: units found there are copied


def synthesize_config(kinds: list[Kind] | None = None, per_passage: int = SynthesizeConfig.per_passage, domain: str | None = None,
                      examples: str | None = None, exclude: list[str] | None = None, similarity: float = DEFAULT_SIMILARITY,
                      passage_tokens: int | None = None, reuse: list[str] | None = None, until_covered: str | None = None) -> SynthesizeConfig:
    """The stage's settings from the command line's options (--examples read here; --until-covered's rows excluded)."""
    return SynthesizeConfig(kinds=tuple(dict.fromkeys(kinds)) if kinds else tuple(Kind), per_passage=per_passage, domain=domain,
                            examples=load_examples(examples) if examples else [], examples_source=examples,
                            exclude=[*(exclude or []), *([until_covered] if until_covered else [])], similarity=similarity,
                            passage_tokens=passage_tokens, reuse=list(reuse or []))
