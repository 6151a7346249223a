"""Reading constitutions and few-shot files: native YAML/JSON, the Hugging Face recipe, Anthropic's files.

A Markdown file (``.md``) is a document constitution (document.py). Three list shapes are accepted and told
apart by their shape, not their name:

* native YAML/JSON: ``{name, description?, critiques: [{id, critique, revision, when?, tier?}],
  comparisons: [{id, question, tier?}], few_shot?: [...], priorities?: [...], hard_constraints?: [...]}``
  (schema.ConstitutionFile);
* the Hugging Face CAI recipe JSON: ``{"constitutions": [{"critic", "revision"}],
  "system_chat": [[messages...], ...]}`` (or a bare list of ``{"critic", "revision"}``);
* the Anthropic paper's prompt files: the critique/revision file
  ``{"harmful0": {"prompt": ["..."], "edit_request": "..."}, ...}`` or the
  comparison file, a JSON list of strings.

Each is validated by its pydantic model and converted into a `ConstitutionFile`, then into the
frozen `Constitution` the stages use. Few-shot files (`--few-shot-file`) are the paper's
`CritiqueRevisionFewShotPrompts.json` (a list of transcripts) or a list of native few-shot entries.
Heavy imports (yaml) happen inside functions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConstitutionError
from .document import SIDECAR_SUFFIX, SUFFIXES, load_document
from .model import ComparisonPrinciple, Constitution, CritiquePrinciple, FewShotExample, HardConstraint
from .parsing import check_unique, few_shot_example, read_data
from .transcripts import FEW_SHOT_BLOCKS, transcript_blocks

if TYPE_CHECKING:
    from . import schema as s

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "constitutions"
DEFAULT_NAME = "default"
_EXTENSIONS = (".yaml", ".yml", ".json", *SUFFIXES)


def builtin_names() -> list[str]:
    """Names of the constitutions shipped with the package (file stems)."""
    if not BUILTIN_DIR.is_dir():
        return []
    return sorted(p.stem for p in BUILTIN_DIR.iterdir() if p.suffix in _EXTENSIONS and not p.name.endswith(SIDECAR_SUFFIX))


def _builtin_path(name: str) -> Path | None:
    for ext in _EXTENSIONS:
        p = BUILTIN_DIR / f"{name}{ext}"
        if p.is_file():
            return p
    return None


def load_constitution(spec: str | None) -> Constitution:
    """Load a constitution.

    ``None`` or ``"default"`` gives the shipped default; a bare name that
    matches a shipped file (``"humanity"``) gives that file; anything else is a
    path to a ``.yaml``/``.yml``/``.json`` file (a list) or a ``.md`` file (a document). Every problem raises
    :class:`ConstitutionError` with a one-line message naming the file and field.
    """
    if spec is None or str(spec).strip() == "":
        spec = DEFAULT_NAME
    spec = str(spec)
    is_bare = "/" not in spec and "\\" not in spec and Path(spec).suffix.lower() not in _EXTENSIONS
    if is_bare:
        builtin = _builtin_path(spec)
        if builtin is not None:
            return _load_file(builtin, shown=str(builtin), source=f"builtin:{spec}")
        if not Path(spec).is_file():
            names = ", ".join(builtin_names()) or "none"
            raise ConstitutionError(f"{spec}: no such constitution: not a shipped one ({names}) and not a file")
    return _load_file(Path(spec), shown=spec, source=spec)




def _load_file(path: Path, *, shown: str, source: str) -> Constitution:
    if path.suffix.lower() in SUFFIXES:
        return load_document(path, shown=shown, source=source)
    return from_data(read_data(path, shown), source=source, shown=shown, default_name=path.stem)




def from_data(data: Any, *, source: str, shown: str | None = None, default_name: str = "constitution") -> Constitution:
    """Build a constitution from parsed YAML/JSON data, detecting the format by shape."""
    from . import schema as s  # pydantic: only when a file is read

    shown = shown or source
    if data is None or data == {} or data == []:
        raise ConstitutionError(f"{shown}: the file is empty")
    if isinstance(data, dict):
        if "constitutions" in data:
            return _build(_from_hf(data, shown, default_name), source, shown, "hf")
        if _looks_anthropic_critiques(data):
            return _build(_from_anthropic_critiques(data, shown, default_name), source, shown, "anthropic")
        return _from_native(data, source, shown)
    if isinstance(data, list):
        # the first item decides the shape; every item is then validated against it
        if isinstance(data[0], str):
            return _build(_from_anthropic_comparisons(data, shown, default_name), source, shown, "anthropic")
        if isinstance(data[0], dict) and "critic" in data[0]:
            return _build(_from_hf({"constitutions": data}, shown, default_name), source, shown, "hf")
        if all(isinstance(x, dict) and ("corrects" in x or "incorrects" in x) for x in data):
            raise ConstitutionError(
                f"{shown}: looks like an Anthropic few-shot comparison file, not a principle file; "
                "load the comparison instructions (a list of strings) instead"
            )
        raise ConstitutionError(
            f"{shown}: unrecognised list: expected a list of strings (Anthropic comparison file) "
            "or of {critic, revision} objects (Hugging Face)"
        )
    raise ConstitutionError(f"{shown}: expected a mapping or a list at the top level, got {s.tname(data)}")




def _from_native(data: dict, source: str, shown: str) -> Constitution:
    from . import schema as s  # pydantic: only when a file is read

    spec = s.validate(s.ConstitutionFile, data, shown)
    if "critiques" not in data and "comparisons" not in data:
        raise ConstitutionError(f"{shown}: critiques: missing (need critiques, comparisons or both)")
    return _build(spec, source, shown, "native")


def _build(spec: s.ConstitutionFile, source: str, shown: str, fmt: str) -> Constitution:
    """The runtime Constitution from a validated file model; checks what one field alone cannot."""
    from .document import _check_tier, _listed_constraints, check_priorities

    check_unique([p.id for p in spec.critiques], shown, "critiques")
    check_unique([p.id for p in spec.comparisons], shown, "comparisons")
    if not spec.critiques and not spec.comparisons:
        raise ConstitutionError(f"{shown}: critiques: empty (need at least one critique or comparison principle)")
    check_priorities(spec.priorities, shown)
    for i, c in enumerate(spec.critiques):
        _check_tier(c.tier, spec.priorities, shown, f"critiques[{i}].tier")
    for i, q in enumerate(spec.comparisons):
        _check_tier(q.tier, spec.priorities, shown, f"comparisons[{i}].tier")
    constraints: list[HardConstraint] = _listed_constraints(spec.hard_constraints, shown)
    from .parsing import behaviours_of

    return Constitution(
        name=spec.name,
        description=spec.description or "",
        critiques=tuple(CritiquePrinciple(p.id, p.critique, p.revision, p.when, p.tier) for p in spec.critiques),
        comparisons=tuple(ComparisonPrinciple(p.id, p.question, p.tier) for p in spec.comparisons),
        few_shot=tuple(few_shot_example(ex) for ex in spec.few_shot or []),
        source=source,
        format=fmt,
        priorities=tuple(spec.priorities),
        hard_constraints=tuple(constraints),
        behaviours=behaviours_of(spec.behaviours, shown),
    )




# Hugging Face CAI recipe (llm-swarm examples/constitutional-ai, alignment-handbook).


def _from_hf(data: dict, shown: str, default_name: str) -> s.ConstitutionFile:
    from . import schema as s  # pydantic: only when a file is read

    recipe = s.validate(s.HFRecipe, data, shown)
    if not recipe.constitutions:
        raise ConstitutionError(f"{shown}: constitutions: empty (need at least one critic/revision pair)")
    few_shot = []
    for i, conv in enumerate(recipe.system_chat or []):
        w = f"system_chat[{i}]"
        if len(conv) < 6 or len(conv) % 2:
            raise ConstitutionError(
                f"{shown}: {w}: expected an even number (at least 6) of messages: prompt, answer, "
                f"critique request, critique, revision request, revision; got {len(conv)}"
            )
        for j, msg in enumerate(conv):
            want = "user" if j % 2 == 0 else "assistant"
            if msg.role != want:
                raise ConstitutionError(f"{shown}: {w}[{j}].role: expected '{want}' (turns alternate), got {msg.role!r}")
        body = [m.content for m in conv[-6:]]
        fields = ("prompt", "response", "critique_request", "critique", "revision_request", "revision")
        entry: dict[str, Any] = dict(zip(fields, body))
        if len(conv) > 6:
            entry["history"] = [{"role": m.role, "content": m.content} for m in conv[:-6]]
        few_shot.append(entry)
    return s.ConstitutionFile.model_validate({
        "name": default_name,
        "description": f"Hugging Face CAI recipe constitution ({len(recipe.constitutions)} critique/revision pairs)",
        "critiques": [{"id": f"hf-{i}", "critique": p.critic, "revision": p.revision} for i, p in enumerate(recipe.constitutions)],
        "few_shot": few_shot,
    })


# Anthropic paper (anthropics/ConstitutionalHarmlessnessPaper, prompts/).

_ANTHROPIC_LEAD = re.compile(r"^\s*(CritiqueRequest|RevisionRequest)\s*:\s*")
_ANTHROPIC_TAIL = re.compile(r"\s*(Critique|Revision|Options)\s*:\s*$")


def _clean_anthropic(text: str) -> str:
    """Drop the paper's plain-text labels ("CritiqueRequest:", "...Critique:", "...Options:")."""
    text = _ANTHROPIC_LEAD.sub("", text.strip())
    return _ANTHROPIC_TAIL.sub("", text).strip()


def _looks_anthropic_critiques(data: dict) -> bool:
    from . import schema as s  # pydantic: only when a file is read

    if not data or any(k in data for k in s.NATIVE_KEYS):
        return False
    return all(isinstance(v, dict) and ("edit_request" in v or "prompt" in v) for v in data.values())


def _from_anthropic_critiques(data: dict, shown: str, default_name: str) -> s.ConstitutionFile:
    from . import schema as s  # pydantic: only when a file is read

    critiques = []
    for key, raw in data.items():
        item = s.validate(s.AnthropicCritique, raw, shown, prefix=(str(key),))
        prompts = [item.prompt] if isinstance(item.prompt, str) else item.prompt
        if not isinstance(prompts, list) or not prompts:
            raise ConstitutionError(f"{shown}: {key}.prompt: expected a non-empty list of strings")
        revision = _clean_anthropic(item.edit_request)
        if not revision:
            raise ConstitutionError(f"{shown}: {key}.edit_request: nothing left after the labels")
        for j, p in enumerate(prompts):
            if not isinstance(p, str) or not p.strip():
                got = "an empty string" if isinstance(p, str) else s.tname(p)
                raise ConstitutionError(f"{shown}: {key}.prompt[{j}]: expected a non-empty string, got {got}")
            critique = _clean_anthropic(p)
            if not critique:
                raise ConstitutionError(f"{shown}: {key}.prompt[{j}]: nothing left after the labels")
            pid = str(key) if len(prompts) == 1 else f"{key}-{j}"
            critiques.append({"id": pid, "critique": critique, "revision": revision})
    return s.ConstitutionFile.model_validate({
        "name": default_name,
        "description": f"Anthropic paper critique/revision instructions ({len(critiques)} pairs)",
        "critiques": critiques,
    })


def _from_anthropic_comparisons(data: list, shown: str, default_name: str) -> s.ConstitutionFile:
    from . import schema as s  # pydantic: only when a file is read

    if any(isinstance(x, str) and ("CritiqueRequest:" in x or "\n\nHuman:" in x) for x in data):
        raise ConstitutionError(
            f"{shown}: looks like an Anthropic few-shot transcript file, not a principle file; "
            "load it with --few-shot-file, and load the critique/revision or comparison instructions as the constitution"
        )
    comparisons = []
    for i, x in enumerate(data):
        if not isinstance(x, str) or not x.strip():
            got = "an empty string" if isinstance(x, str) else s.tname(x)
            raise ConstitutionError(f"{shown}: [{i}]: expected a non-empty string, got {got}")
        q = _clean_anthropic(x)
        if not q:
            raise ConstitutionError(f"{shown}: [{i}]: nothing left after the labels")
        comparisons.append({"id": f"anthropic-{i}", "question": q})
    return s.ConstitutionFile.model_validate({
        "name": default_name,
        "description": f"Anthropic paper comparison instructions ({len(comparisons)} questions)",
        "comparisons": comparisons,
    })


# --------------------------------------------------------------------------- few-shot files

_TAIL_LABELS = ("CritiqueRequest", "Critique", "RevisionRequest", "Revision")
_SHAPE = "Human/Assistant turns, then CritiqueRequest, Critique, RevisionRequest and Revision blocks"


def load_few_shot_file(path: str) -> tuple[FewShotExample, ...]:
    """Worked examples from a file: the paper's CritiqueRevisionFewShotPrompts.json (a list of transcripts
    in Human:/Assistant:/CritiqueRequest:/Critique:/RevisionRequest:/Revision: blocks) or a list of native
    few-shot entries {prompt, response, critique_request, critique, revision_request, revision, history?}."""
    from . import schema as s  # pydantic: only when a file is read

    data = read_data(Path(path), path)
    if isinstance(data, dict) and "few_shot" in data:
        data = data["few_shot"]
    if not isinstance(data, list) or not data:
        raise ConstitutionError(
            f"{path}: expected a non-empty list of worked examples (transcript strings, or few-shot mappings), got {s.tname(data) if data else 'nothing'}"
        )
    examples = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            examples.append(few_shot_transcript(item, path, i))
        else:
            examples.append(few_shot_example(s.validate(s.FewShotSpec, item, path, prefix=(i,))))
    return tuple(examples)


def few_shot_transcript(text: str, shown: str, index: int) -> FewShotExample:
    """One of the paper's few-shot transcripts as a FewShotExample; errors name the entry and the block."""
    where = f"{shown}: [{index}]"
    lead, blocks = transcript_blocks(text, FEW_SHOT_BLOCKS)
    if not blocks:
        raise ConstitutionError(f"{where}: no labelled blocks; expected {_SHAPE}")
    if lead.strip():
        raise ConstitutionError(f"{where}: text before the first label ({lead.strip()[:40]!r}); expected {_SHAPE}")
    if blocks and blocks[-1] == ("Human", ""):
        blocks.pop()  # the paper ends each transcript on an open "Human:" for the next one
    turns = []
    while blocks and blocks[0][0] in ("Human", "Assistant"):
        turns.append(blocks.pop(0))
    if not turns:
        raise ConstitutionError(f"{where}.Human: missing; expected {_SHAPE}")
    for j, (label, content) in enumerate(turns):
        want = "Human" if j % 2 == 0 else "Assistant"
        if label != want:
            raise ConstitutionError(f"{where}.{want}: turn {j + 1} is {label}, expected {want} (turns alternate)")
        if not content:
            raise ConstitutionError(f"{where}.{label}: turn {j + 1} is empty")
    if turns[-1][0] != "Assistant":
        raise ConstitutionError(f"{where}.Assistant: missing after the last Human turn; expected {_SHAPE}")
    tail: dict[str, str] = {}
    for k, want in enumerate(_TAIL_LABELS):
        if k >= len(blocks):
            raise ConstitutionError(f"{where}.{want}: missing; expected {_SHAPE}")
        label, content = blocks[k]
        if label != want:
            raise ConstitutionError(f"{where}.{want}: missing (found {label} in its place); expected {_SHAPE}")
        if not content:
            raise ConstitutionError(f"{where}.{want}: empty")
        tail[want] = content
    if len(blocks) > len(_TAIL_LABELS):
        extra = blocks[len(_TAIL_LABELS)][0]
        raise ConstitutionError(f"{where}.{extra}: unexpected block after Revision; expected {_SHAPE}")
    roles = [("user" if label == "Human" else "assistant", content) for label, content in turns]
    return FewShotExample(
        prompt=roles[-2][1],
        response=roles[-1][1],
        critique_request=tail["CritiqueRequest"],
        critique=tail["Critique"],
        revision_request=tail["RevisionRequest"],
        revision=tail["Revision"],
        history=tuple(roles[:-2]),
    )
