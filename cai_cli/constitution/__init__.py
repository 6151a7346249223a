"""Constitutions: the schema (pydantic), the loaders (native, Hugging Face, Anthropic), principle sampling.

A constitution holds two lists of principles:

* ``critiques`` — critique/revision request pairs for the supervised stage, each with a
  condition ``when`` (always | refused | answered) on the response it may critique;
* ``comparisons`` — multiple-choice questions for the feedback model in the
  RL stage. A question is written so that the options ``(A) …`` and ``(B) …``
  follow it directly ("Which of these assistant responses is less harmful?").

Modules: ``schema`` (the file formats as pydantic models, JSON Schema, one-line errors), ``model``
(the frozen objects the stages use), ``loaders`` (files, formats, few-shot files), ``sampling``,
``display``. Heavy imports (yaml, rich) happen inside functions.
"""

from __future__ import annotations

from .display import constitution_table
from .loaders import (
    BUILTIN_DIR,
    DEFAULT_NAME,
    builtin_names,
    from_data,
    load_constitution,
    load_few_shot_file,
    parse_transcript,
)
from .model import (
    WHEN_VALUES,
    ComparisonPrinciple,
    Constitution,
    CritiquePrinciple,
    FewShotExample,
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
    "builtin_names",
    "constitution_table",
    "examples_hash",
    "from_data",
    "load_constitution",
    "load_few_shot_file",
    "parse_transcript",
    "sample_principle_index",
    "sample_principles",
]
