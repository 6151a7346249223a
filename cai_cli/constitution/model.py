"""The constitution as the stages use it: frozen principles, worked examples, a content hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..errors import ConstitutionError

# When a critique principle applies, judged on the response it critiques by cai_cli.refusal.detect:
# "refused" only where that response declined (refusal, deflection or partial answer), "answered" only where it
# answered. A helpfulness principle ("stop being preachy, just help") marked `refused` can then never be drawn
# against a correct refusal and turn it into compliance.
WHEN_VALUES = ("always", "refused", "answered")


@dataclass(frozen=True)
class CritiquePrinciple:
    """One critique request, the revision request that goes with it, and when it applies."""

    id: str
    critique: str
    revision: str
    when: str = "always"

    def applies_to(self, label: str) -> bool:
        """Whether this principle may be drawn for a response the refusal detector labelled LABEL."""
        if self.when == "refused":
            return label != "answer"
        if self.when == "answered":
            return label == "answer"
        return True

    def _canonical(self) -> dict[str, Any]:
        d = {"id": self.id, "critique": self.critique, "revision": self.revision}
        if self.when != "always":  # absent when default, so constitutions without `when` keep their hash
            d["when"] = self.when
        return d


@dataclass(frozen=True)
class ComparisonPrinciple:
    """A multiple-choice question for the judge; options (A) and (B) follow it."""

    id: str
    question: str


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
    blob = json.dumps([ex._canonical() for ex in examples], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Constitution:
    name: str
    description: str
    critiques: tuple[CritiquePrinciple, ...]
    comparisons: tuple[ComparisonPrinciple, ...]
    few_shot: tuple[FewShotExample, ...]
    source: str  # path it was loaded from, or "builtin:<name>"
    format: str  # "native" | "hf" | "anthropic"

    def canonical(self) -> dict[str, Any]:
        """The content (not the source or format) as plain JSON-able data."""
        return {
            "name": self.name,
            "description": self.description,
            "critiques": [p._canonical() for p in self.critiques],
            "comparisons": [{"id": p.id, "question": p.question} for p in self.comparisons],
            "few_shot": [ex._canonical() for ex in self.few_shot],
        }

    @property
    def hash(self) -> str:
        """First 12 hex chars of sha256 over a canonical JSON of the content."""
        blob = json.dumps(self.canonical(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]

    def critique_by_id(self, pid: str) -> CritiquePrinciple:
        return self._by_id(self.critiques, "critique", pid)

    def comparison_by_id(self, pid: str) -> ComparisonPrinciple:
        return self._by_id(self.comparisons, "comparison", pid)

    def _by_id(self, principles, kind: str, pid: str):
        for p in principles:
            if p.id == pid:
                return p
        have = ", ".join(p.id for p in principles) or "none"
        raise ConstitutionError(f"{self.source}: no {kind} principle with id '{pid}' (have: {have})")
