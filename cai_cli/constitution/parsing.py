"""Reading a constitution's YAML/JSON (or a document's header) into data, with one-line errors naming the file;
the checks and conversions that list and document constitutions share."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConstitutionError
from ..jsonl import JsonProblem, parse_json
from .model import FewShotExample

if TYPE_CHECKING:
    from . import schema as s

def read_text(path: Path, shown: str, expected: str) -> str:
    """The text of constitution file PATH (SHOWN in messages); one-line errors for a missing file, a folder (EXPECTED
    says what should be there), bytes that are not UTF-8 and any OS error."""
    if not path.exists():
        raise ConstitutionError(f"{shown}: no such file")
    if path.is_dir():
        raise ConstitutionError(f"{shown}: is a directory, expected {expected}")
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark is ignored, as in JSONL
    except UnicodeDecodeError:
        raise ConstitutionError(f"{shown}: not UTF-8 text") from None
    except OSError as e:
        raise ConstitutionError(f"{shown}: cannot read: {e.strerror or e}") from None


def read_data(path: Path, shown: str) -> Any:
    """Parsed YAML/JSON content of PATH; one-line errors naming the file (and line for syntax errors)."""
    return parse_text(read_text(path, shown, "a .yaml or .json file"), path.suffix.lower(), shown)

def parse_text(text: str, suffix: str, shown: str) -> Any:
    if suffix == ".json":
        try:
            return parse_json(text)
        except JsonProblem as e:
            where = f"{shown}:{e.line}" if e.line else shown
            message = e.message.removeprefix("not valid JSON (").removesuffix(")") if e.line else e.message
            field = f"{e.field}: " if e.field else ""
            raise ConstitutionError(f"{where}: {field}invalid JSON: {message}" if e.line else f"{where}: {field}{message}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise ConstitutionError(f"{shown}: nested too deep (objects and lists inside one another)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        where = f"{shown}:{mark.line + 1}" if mark is not None else shown
        context, cmark = getattr(e, "context", None), getattr(e, "context_mark", None)
        extra = ""
        if context and cmark is not None and mark is not None and cmark.line != mark.line:
            extra = f" ({context} started at line {cmark.line + 1})"
        raise ConstitutionError(f"{where}: invalid YAML: {problem}{extra}") from None

def check_unique(ids: list[str], shown: str, kind: str) -> None:
    seen: dict[str, int] = {}
    for i, pid in enumerate(ids):
        if pid in seen:
            raise ConstitutionError(f"{shown}: {kind}[{i}].id: duplicate id '{pid}' (also {kind}[{seen[pid]}])")
        seen[pid] = i

def behaviours_of(specs: list[s.BehaviourSpec], shown: str, section_ids: list[str] | None = None) -> tuple:
    """The declared instructable behaviours; SECTION_IDS (a document's) resolve each `section`."""
    from .model import Behaviour

    check_unique([b.id for b in specs], shown, "behaviours")
    out = []
    for i, b in enumerate(specs):
        section = b.section
        if section is not None:
            if section_ids is None:
                raise ConstitutionError(f"{shown}: behaviours[{i}].section: only a Markdown constitution has sections")
            section = resolve_section(section, section_ids, shown, f"behaviours[{i}].section")
        out.append(Behaviour(b.id, " ".join(b.description.split()), b.default, tuple(dict.fromkeys(b.changed_by)), section))
    return tuple(out)


def few_shot_example(ex: s.FewShotSpec) -> FewShotExample:
    history = tuple((m.role, m.content) for m in ex.history or [])
    return FewShotExample(ex.prompt, ex.response, ex.critique_request, ex.critique, ex.revision_request, ex.revision, history)


def resolve_section(key: str, ids: list[str], where: str, field_name: str) -> str:
    """The section id KEY names: an id, or the unique id that ends with KEY's path segments."""
    if key in ids:
        return key
    matches = [i for i in ids if i.endswith("/" + key)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConstitutionError(f"{where}: {field_name}: '{key}' names several sections ({', '.join(matches)}): use the full id")
    shown_ids = ", ".join(ids[:12]) + (f", ... ({len(ids)} in all)" if len(ids) > 12 else "")
    raise ConstitutionError(f"{where}: {field_name}: no section '{key}' (ids are heading paths as slugs: {shown_ids})")
