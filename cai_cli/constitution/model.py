"""The constitution as the stages use it: frozen principles, sections, tiers, hard constraints, a content hash.

Two shapes load into the one `Constitution`:

* a list (YAML/JSON): `critiques` and `comparisons`, each principle optionally in a `tier`;
* a document (Markdown): `sections` (one per heading, id = the heading path as a slug, text kept for
  citation, a content hash each), from which the loader derives one critique principle per routed
  section, so the stages see the same `critiques` either way.

Both may declare `priorities` (the tiers, highest first) and `hard_constraints`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..errors import ConstitutionError

# When a critique principle applies, judged on the response it critiques by cai_cli.refusal.detect:
# "refused" only where that response declined (refusal, deflection or partial answer), "answered" only where it
# answered. A helpfulness principle ("stop being preachy, just help") marked `refused` can then never be drawn
# against a correct refusal and turn it into compliance.
# "operator" only where the row has a system message (an operator's instructions), "no-operator" only where it has
# none: a section about following an operator's instructions has nothing to say to a bare user chat.
WHEN_VALUES = ("always", "refused", "answered", "operator", "no-operator")


class Shape(str, Enum):
    """The two shapes a constitution comes in: a list of principles (YAML/JSON), or a Markdown document."""

    list = "list"
    document = "document"


def short_hash(value: Any) -> str:
    """First 12 hex chars of sha256 over a canonical JSON of VALUE (content hashes everywhere in this package)."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def applies(when: str, label: str, operator: bool) -> bool:
    """Whether a principle or section with condition WHEN may be used for a response the refusal detector
    labelled LABEL, in a conversation with (OPERATOR) or without a system message."""
    if when == "refused":
        return label != "answer"
    if when == "answered":
        return label == "answer"
    if when == "operator":
        return operator
    if when == "no-operator":
        return not operator
    return True


@dataclass(frozen=True)
class Tier:
    """One priority tier; rank 0 is the highest (it dominates in a conflict)."""

    name: str
    rank: int


@dataclass(frozen=True)
class Section:
    """One heading of a document constitution and the text under it (up to the next heading of any level).

    ``id`` is the heading path as a slug ("being-safe/weapons-and-serious-harm"); ``path`` the headings'
    own words from the top. ``tier``, ``when`` and ``routed`` come from the header (a section inherits them
    from the nearest section above it that sets them). ``line`` is the heading's line in the file.
    """

    id: str
    title: str
    path: tuple[str, ...]
    level: int
    text: str
    line: int = 0
    tier: str | None = None
    when: str = "always"
    routed: bool = True

    @property
    def heading(self) -> str:
        """The heading path as people read it: "Being safe › Weapons and serious harm"."""
        return " › ".join(self.path)

    @property
    def parent(self) -> str | None:
        return self.id.rsplit("/", 1)[0] if "/" in self.id else None

    @property
    def hash(self) -> str:
        """Content hash of the heading and the text (what a critique cites); tier and `when` are not content."""
        return short_hash({"title": self.title, "text": self.text})

    def _canonical(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "title": self.title, "text": self.text}
        if self.tier is not None:
            d["tier"] = self.tier
        if self.when != "always":
            d["when"] = self.when
        if not self.routed:
            d["routed"] = False
        return d


@dataclass(frozen=True)
class HardConstraint:
    """A line that no answer may cross, checked on every answer (a gate), never drawn like a principle.

    ``section`` is the id of the section whose bullet it is, or None when the header lists it.
    """

    id: str
    text: str
    section: str | None = None

    @property
    def hash(self) -> str:
        return short_hash({"text": self.text})


PRINCIPALS = ("operator", "user")  # who may switch an instructable behaviour


@dataclass(frozen=True)
class Behaviour:
    """An instructable behaviour: something the assistant does or not by default (`default`), which the principals in
    `changed_by` (operator, user) may switch on or off; `section` is the section that describes it, where one does."""

    id: str
    description: str
    default: bool
    changed_by: tuple[str, ...] = ("operator",)
    section: str | None = None

    def _canonical(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "description": self.description, "default": self.default, "changed_by": list(self.changed_by)}
        if self.section is not None:
            d["section"] = self.section
        return d


@dataclass(frozen=True)
class CritiquePrinciple:
    """One critique request, the revision request that goes with it, and when it applies."""

    id: str
    critique: str
    revision: str
    when: str = "always"
    tier: str | None = None
    section: str | None = None  # the document section it was made from (its id), None in a list constitution
    passage: str | None = None  # the passage it quotes (its id): a document's passage, or the one stating a constraint

    def applies_to(self, label: str, operator: bool = False) -> bool:
        """Whether this principle may be drawn for a response the refusal detector labelled LABEL, in a
        conversation with (OPERATOR) or without a system message."""
        return applies(self.when, label, operator)

    @property
    def hash(self) -> str:
        """Hash of what a round shows the model (the requests) and when it applies."""
        return short_hash(self._canonical(with_tier=False))

    @property
    def critique_hash(self) -> str:
        """Hash of what the critic is shown of the constitution (the critique request, the passage in it); recorded in
        each round as `principle_hash`, so `--amend` recomputes a round exactly when that changed."""
        return short_hash({"critique": self.critique})

    @property
    def revision_hash(self) -> str:
        """Hash of what the reviser is shown of the constitution besides the critique round it answers (the revision
        request); recorded in each revised round as `revision_hash`."""
        return short_hash({"revision": self.revision})

    def _canonical(self, with_tier: bool = True) -> dict[str, Any]:
        d = {"id": self.id, "critique": self.critique, "revision": self.revision}
        if self.when != "always":  # absent when default, so constitutions without `when` keep their hash
            d["when"] = self.when
        if with_tier and self.tier is not None:
            d["tier"] = self.tier
        return d


@dataclass(frozen=True)
class ComparisonPrinciple:
    """A multiple-choice question for the judge; options (A) and (B) follow it."""

    id: str
    question: str
    tier: str | None = None

    @property
    def hash(self) -> str:
        """Hash of the question and its tier (both change a verdict); recorded in each label, for amended runs."""
        return short_hash({"question": self.question, "tier": self.tier})

    def _canonical(self) -> dict[str, Any]:
        d = {"id": self.id, "question": self.question}
        if self.tier is not None:
            d["tier"] = self.tier
        return d


@dataclass(frozen=True)
class FewShotExample:
    """A worked critique/revision conversation.

    ``history`` holds earlier turns of the conversation, before ``prompt``, as
    ``(role, content)`` pairs (role "user" or "assistant"); it is empty for a
    single-turn example. ``messages()`` gives the whole conversation in chat form.
    """

    prompt: str
    response: str
    critique_request: str
    critique: str
    revision_request: str
    revision: str
    history: tuple[tuple[str, str], ...] = ()

    def conversation(self) -> list[dict[str, str]]:
        """The example's conversation up to and including the response being critiqued."""
        out = [{"role": role, "content": content} for role, content in self.history]
        return out + [{"role": "user", "content": self.prompt}, {"role": "assistant", "content": self.response}]

    def messages(self) -> list[dict[str, str]]:
        """The example as chat messages: history, prompt, response, critique and revision turns."""
        return self.conversation() + [
            {"role": "user", "content": self.critique_request},
            {"role": "assistant", "content": self.critique},
            {"role": "user", "content": self.revision_request},
            {"role": "assistant", "content": self.revision},
        ]

    def _canonical(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "prompt": self.prompt,
            "response": self.response,
            "critique_request": self.critique_request,
            "critique": self.critique,
            "revision_request": self.revision_request,
            "revision": self.revision,
        }
        if self.history:
            d["history"] = [{"role": r, "content": c} for r, c in self.history]
        return d


def examples_hash(examples) -> str:
    """First 12 hex chars of sha256 over the examples' content (for resume fingerprints and provenance)."""
    return short_hash([ex._canonical() for ex in examples])


@dataclass(frozen=True)
class Constitution:
    """A loaded constitution. The stages read `critiques` and `comparisons`; a document also has `sections`.

    What the gate (cai_cli.judge.gate), the per-tier judge (cai_cli.judge.tiers) and --amend (cai_cli.stages.amend) read:
    `tiers` (highest first), `tier_of(x)`, `sections`, `section_by_id(id)`, `hard_constraints`,
    `critiques_in(tier)`, `comparisons_in(tier)`, `hash`; each section, principle, comparison and constraint has
    its own `hash`. `diff.diff_constitutions(old, new)` lists what changed.
    """

    name: str
    description: str
    critiques: tuple[CritiquePrinciple, ...]
    comparisons: tuple[ComparisonPrinciple, ...]
    few_shot: tuple[FewShotExample, ...]
    source: str  # path it was loaded from, or "builtin:<name>"
    format: str  # "native" | "hf" | "anthropic" | "markdown"
    priorities: tuple[str, ...] = ()  # tier names, highest first
    sections: tuple[Section, ...] = ()  # a document's headings, in order; empty for a list constitution
    hard_constraints: tuple[HardConstraint, ...] = ()
    # A document's sections as passages (passages.py) under `passage_tokens`: what routing ranks and models are shown.
    # Not part of the hash: the split is a view of the sections, recorded by the stages that use it.
    passages: tuple[Any, ...] = ()
    passage_tokens: int | None = None
    behaviours: tuple[Behaviour, ...] = ()

    @property
    def is_document(self) -> bool:
        return self.format == "markdown"

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return tuple(Tier(name, rank) for rank, name in enumerate(self.priorities))

    def tier_of(self, item: Section | CritiquePrinciple | ComparisonPrinciple | str) -> Tier | None:
        """The tier of a section, a principle, or the section/principle with that id (None where it has none)."""
        if isinstance(item, str):
            pool: list[Section | CritiquePrinciple | ComparisonPrinciple] = [*self.sections, *self.critiques, *self.comparisons]
            found = [x for x in pool if x.id == item]
            if not found:
                raise ConstitutionError(f"{self.source}: no section or principle with id '{item}'")
            item = found[0]
        if item.tier is None:
            return None
        return Tier(item.tier, self.priorities.index(item.tier))

    def critiques_in(self, tier: str) -> tuple[CritiquePrinciple, ...]:
        return tuple(p for p in self.critiques if p.tier == tier)

    def comparisons_in(self, tier: str) -> tuple[ComparisonPrinciple, ...]:
        return tuple(p for p in self.comparisons if p.tier == tier)

    def canonical(self) -> dict[str, Any]:
        """The content (not the source or format) as plain JSON-able data.

        A document's critiques are derived from its sections, so its sections stand in for them. Keys a list
        constitution does not use are left out, so its hash is what it was before tiers and constraints existed.
        """
        d: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.is_document:
            d["sections"] = [s._canonical() for s in self.sections]
        else:
            d["critiques"] = [p._canonical() for p in self.critiques]
        d["comparisons"] = [p._canonical() for p in self.comparisons]
        d["few_shot"] = [ex._canonical() for ex in self.few_shot]
        if self.priorities:
            d["priorities"] = list(self.priorities)
        if self.hard_constraints:
            d["hard_constraints"] = [{"id": h.id, "text": h.text} for h in self.hard_constraints]
        if self.behaviours:
            d["behaviours"] = [b._canonical() for b in self.behaviours]
        return d

    @property
    def hash(self) -> str:
        """First 12 hex chars of sha256 over a canonical JSON of the content."""
        return short_hash(self.canonical())

    def critique_by_id(self, pid: str) -> CritiquePrinciple:
        return self._by_id(self.critiques, "critique", pid)

    def comparison_by_id(self, pid: str) -> ComparisonPrinciple:
        return self._by_id(self.comparisons, "comparison", pid)

    def section_by_id(self, sid: str) -> Section:
        return self._by_id(self.sections, "section", sid)

    def passage_by_id(self, pid: str):
        return self._by_id(self.passages, "passage", pid)

    def _by_id(self, principles, kind: str, pid: str):
        for p in principles:
            if p.id == pid:
                return p
        have = ", ".join(p.id for p in principles) or "none"
        raise ConstitutionError(f"{self.source}: no {kind} {'' if kind in ('section', 'passage') else 'principle '}with id '{pid}' (have: {have})")
