"""Constitutions: the schema (pydantic), the loaders (Markdown documents; native, Hugging Face and Anthropic
lists), routing (which principle or section each row gets), coverage, diff, drafting a document's header.

A constitution holds two lists of principles:

* ``critiques`` — critique/revision request pairs for the supervised stage, each with a
  condition ``when`` (always | refused | answered | operator | no-operator) on the response it may critique
  and the conversation it is in; a document's are made from its sections;
* ``comparisons`` — multiple-choice questions for the feedback model in the
  RL stage. A question is written so that the options ``(A) …`` and ``(B) …``
  follow it directly ("Which of these assistant responses is less harmful?").

and, where the file declares them, ``priorities`` (tiers, highest first), a ``tier`` per principle or section,
and ``hard_constraints``. See docs/constitutions.md for the API (``Constitution.sections``, ``.tiers``,
``.hard_constraints``, ``.tier_of``).

Modules: ``schema`` (the file formats as pydantic models, JSON Schema, one-line errors), ``model``
(the frozen objects the stages use), ``loaders`` (files, formats, few-shot files), ``document``
(Markdown), ``requests`` (a section's critique and revision requests), ``routing``, ``sampling``,
``coverage``, ``diff``, ``draft``, ``display``. Heavy imports (yaml, rich, markdown-it, bm25s) happen inside
functions.
"""

from __future__ import annotations

from .display import constitution_table
from .loaders import (
    BUILTIN_DIR,
    DEFAULT_NAME,
    builtin_names,
    few_shot_transcript,
    from_data,
    load_constitution,
    load_few_shot_file,
)
from .model import (
    WHEN_VALUES,
    ComparisonPrinciple,
    Constitution,
    CritiquePrinciple,
    FewShotExample,
    HardConstraint,
    Section,
    Tier,
    examples_hash,
)
from .sampling import sample_principle_index, sample_principles

__all__ = [
    "BUILTIN_DIR",
    "DEFAULT_NAME",
    "WHEN_VALUES",
    "ComparisonPrinciple",
    "Constitution",
    "CritiquePrinciple",
    "FewShotExample",
    "HardConstraint",
    "Section",
    "Tier",
    "builtin_names",
    "constitution_table",
    "examples_hash",
    "from_data",
    "load_constitution",
    "load_few_shot_file",
    "few_shot_transcript",
    "sample_principle_index",
    "sample_principles",
]
