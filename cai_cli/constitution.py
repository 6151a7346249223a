"""Constitutions: the schema, the loaders (native, Hugging Face, Anthropic) and principle sampling.

A constitution holds two lists of principles:

* ``critiques`` — critique/revision request pairs for the supervised stage;
* ``comparisons`` — multiple-choice questions for the feedback model in the
  RL stage. A question is written so that the options ``(A) …`` and ``(B) …``
  follow it directly ("Which of these assistant responses is less harmful?").

Three file shapes are accepted and told apart by their shape, not their name:

* native YAML/JSON: ``{name, description?, critiques: [{id, critique, revision}],
  comparisons: [{id, question}], few_shot?: [...]}``;
* the Hugging Face CAI recipe JSON: ``{"constitutions": [{"critic", "revision"}],
  "system_chat": [[messages...], ...]}`` (or a bare list of ``{"critic", "revision"}``);
* the Anthropic paper's prompt files: the critique/revision file
  ``{"harmful0": {"prompt": ["..."], "edit_request": "..."}, ...}`` or the
  comparison file, a JSON list of strings.

Sampling is deterministic and process-independent (sha256, never ``hash()``),
so a rerun or another shard draws the same principle for the same row.

Heavy imports (yaml, rich) happen inside functions.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cai_cli.errors import ConstitutionError

BUILTIN_DIR = Path(__file__).resolve().parent / "constitutions"
DEFAULT_NAME = "default"

# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class CritiquePrinciple:
    """One critique request and the revision request that goes with it."""

    id: str
    critique: str
    revision: str


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

    def messages(self) -> list[dict[str, str]]:
        """The example as chat messages: history, prompt, response, critique and revision turns."""
        out = [{"role": role, "content": content} for role, content in self.history]
        out += [
            {"role": "user", "content": self.prompt},
            {"role": "assistant", "content": self.response},
            {"role": "user", "content": self.critique_request},
            {"role": "assistant", "content": self.critique},
            {"role": "user", "content": self.revision_request},
            {"role": "assistant", "content": self.revision},
        ]
        return out

    def _canonical(self) -> dict[str, Any]:
        d = {
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
            "critiques": [{"id": p.id, "critique": p.critique, "revision": p.revision} for p in self.critiques],
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


# --------------------------------------------------------------------------- loading


def builtin_names() -> list[str]:
    """Names of the constitutions shipped with the package (file stems)."""
    if not BUILTIN_DIR.is_dir():
        return []
    return sorted(p.stem for p in BUILTIN_DIR.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


def _builtin_path(name: str) -> Path | None:
    for ext in (".yaml", ".yml", ".json"):
        p = BUILTIN_DIR / f"{name}{ext}"
        if p.is_file():
            return p
    return None


def load_constitution(spec: str | None) -> Constitution:
    """Load a constitution.

    ``None`` or ``"default"`` gives the shipped default; a bare name that
    matches a shipped file (``"humanity"``) gives that file; anything else is a
    path to a ``.yaml``/``.yml``/``.json`` file. Every problem raises
    :class:`ConstitutionError` with a one-line message naming the file and field.
    """
    if spec is None or str(spec).strip() == "":
        spec = DEFAULT_NAME
    spec = str(spec)
    is_bare = "/" not in spec and "\\" not in spec and Path(spec).suffix.lower() not in (".yaml", ".yml", ".json")
    if is_bare:
        builtin = _builtin_path(spec)
        if builtin is not None:
            return _load_file(builtin, shown=str(builtin), source=f"builtin:{spec}")
        if not Path(spec).is_file():
            names = ", ".join(builtin_names()) or "none"
            raise ConstitutionError(
                f"{spec}: no such constitution: not a shipped one ({names}) and not a file"
            )
    return _load_file(Path(spec), shown=spec, source=spec)


def _load_file(path: Path, *, shown: str, source: str) -> Constitution:
    if not path.exists():
        raise ConstitutionError(f"{shown}: no such file")
    if path.is_dir():
        raise ConstitutionError(f"{shown}: is a directory, expected a .yaml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConstitutionError(f"{shown}: not UTF-8 text") from None
    except OSError as e:
        raise ConstitutionError(f"{shown}: cannot read: {e.strerror or e}") from None
    data = _parse(text, path.suffix.lower(), shown)
    return from_data(data, source=source, shown=shown, default_name=path.stem)


def _parse(text: str, suffix: str, shown: str) -> Any:
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ConstitutionError(f"{shown}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        where = f"{shown}:{mark.line + 1}" if mark is not None else shown
        context, cmark = getattr(e, "context", None), getattr(e, "context_mark", None)
        extra = ""
        if context and cmark is not None and mark is not None and cmark.line != mark.line:
            extra = f" ({context} started at line {cmark.line + 1})"
        raise ConstitutionError(f"{where}: invalid YAML: {problem}{extra}") from None


def from_data(data: Any, *, source: str, shown: str | None = None, default_name: str = "constitution") -> Constitution:
    """Build a constitution from parsed YAML/JSON data, detecting the format by shape."""
    shown = shown or source
    if data is None or data == {} or data == []:
        raise ConstitutionError(f"{shown}: the file is empty")
    if isinstance(data, dict):
        if "constitutions" in data:
            return _from_hf(data, source, shown, default_name)
        if _looks_anthropic_critiques(data):
            return _from_anthropic_critiques(data, source, shown, default_name)
        return _from_native(data, source, shown)
    if isinstance(data, list):
        # the first item decides the shape; every item is then validated against it
        if isinstance(data[0], str):
            return _from_anthropic_comparisons(data, source, shown, default_name)
        if isinstance(data[0], dict) and "critic" in data[0]:
            return _from_hf({"constitutions": data}, source, shown, default_name)
        if data and all(isinstance(x, dict) and ("corrects" in x or "incorrects" in x) for x in data):
            raise ConstitutionError(
                f"{shown}: looks like an Anthropic few-shot comparison file, not a principle file; "
                "load the comparison instructions (a list of strings) instead"
            )
        raise ConstitutionError(
            f"{shown}: unrecognised list: expected a list of strings (Anthropic comparison file) "
            "or of {critic, revision} objects (Hugging Face)"
        )
    raise ConstitutionError(f"{shown}: expected a mapping or a list at the top level, got {_tname(data)}")


def _tname(v: Any) -> str:
    if v is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(v), type(v).__name__
    )


def _str(v: Any, shown: str, where: str) -> str:
    if not isinstance(v, str) or not v.strip():
        got = "an empty string" if isinstance(v, str) else _tname(v)
        raise ConstitutionError(f"{shown}: {where}: expected a non-empty string, got {got}")
    return v.strip()


def _list(v: Any, shown: str, where: str) -> list:
    if not isinstance(v, list):
        raise ConstitutionError(f"{shown}: {where}: expected a list, got {_tname(v)}")
    return v


def _mapping(v: Any, shown: str, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(v, dict):
        raise ConstitutionError(f"{shown}: {where}: expected a mapping, got {_tname(v)}")
    allowed = set(required) | set(optional)
    for k in v:
        if k not in allowed:
            expected = ", ".join(list(required) + list(optional))
            raise ConstitutionError(f"{shown}: {where}.{k}: unknown key (expected: {expected})")
    for k in required:
        if k not in v:
            raise ConstitutionError(f"{shown}: {where}.{k}: missing")
    return v


def _check_unique(ids: list[str], shown: str, kind: str) -> None:
    seen: dict[str, int] = {}
    for i, pid in enumerate(ids):
        if pid in seen:
            raise ConstitutionError(f"{shown}: {kind}[{i}].id: duplicate id '{pid}' (also {kind}[{seen[pid]}])")
        seen[pid] = i


_NATIVE_TOP = ("name", "description", "critiques", "comparisons", "few_shot")
_FEW_SHOT_FIELDS = ("prompt", "response", "critique_request", "critique", "revision_request", "revision")


def _from_native(data: dict, source: str, shown: str) -> Constitution:
    for k in data:
        if k not in _NATIVE_TOP:
            raise ConstitutionError(f"{shown}: {k}: unknown key (expected: {', '.join(_NATIVE_TOP)})")
    if "name" not in data:
        raise ConstitutionError(f"{shown}: name: missing")
    name = _str(data["name"], shown, "name")
    description = ""
    if data.get("description") is not None:
        description = _str(data["description"], shown, "description")
    if "critiques" not in data and "comparisons" not in data:
        raise ConstitutionError(f"{shown}: critiques: missing (need critiques, comparisons or both)")

    critiques: list[CritiquePrinciple] = []
    for i, item in enumerate(_list(data.get("critiques", []), shown, "critiques")):
        w = f"critiques[{i}]"
        item = _mapping(item, shown, w, ("id", "critique", "revision"))
        critiques.append(
            CritiquePrinciple(
                id=_str(item["id"], shown, f"{w}.id"),
                critique=_str(item["critique"], shown, f"{w}.critique"),
                revision=_str(item["revision"], shown, f"{w}.revision"),
            )
        )
    _check_unique([p.id for p in critiques], shown, "critiques")

    comparisons: list[ComparisonPrinciple] = []
    for i, item in enumerate(_list(data.get("comparisons", []), shown, "comparisons")):
        w = f"comparisons[{i}]"
        item = _mapping(item, shown, w, ("id", "question"))
        comparisons.append(
            ComparisonPrinciple(id=_str(item["id"], shown, f"{w}.id"), question=_str(item["question"], shown, f"{w}.question"))
        )
    _check_unique([p.id for p in comparisons], shown, "comparisons")

    if not critiques and not comparisons:
        raise ConstitutionError(f"{shown}: critiques: empty (need at least one critique or comparison principle)")

    few_shot: list[FewShotExample] = []
    fs = data.get("few_shot")
    for i, item in enumerate(_list(fs, shown, "few_shot") if fs is not None else []):
        w = f"few_shot[{i}]"
        item = _mapping(item, shown, w, _FEW_SHOT_FIELDS, ("history",))
        history: list[tuple[str, str]] = []
        if item.get("history") is not None:
            for j, msg in enumerate(_list(item["history"], shown, f"{w}.history")):
                mw = f"{w}.history[{j}]"
                msg = _mapping(msg, shown, mw, ("role", "content"))
                role = _str(msg["role"], shown, f"{mw}.role")
                if role not in ("user", "assistant"):
                    raise ConstitutionError(f"{shown}: {mw}.role: expected 'user' or 'assistant', got '{role}'")
                history.append((role, _str(msg["content"], shown, f"{mw}.content")))
        few_shot.append(
            FewShotExample(**{f: _str(item[f], shown, f"{w}.{f}") for f in _FEW_SHOT_FIELDS}, history=tuple(history))
        )

    return Constitution(
        name=name,
        description=description,
        critiques=tuple(critiques),
        comparisons=tuple(comparisons),
        few_shot=tuple(few_shot),
        source=source,
        format="native",
    )


# Hugging Face CAI recipe (llm-swarm examples/constitutional-ai, alignment-handbook).


def _from_hf(data: dict, source: str, shown: str, default_name: str) -> Constitution:
    critiques: list[CritiquePrinciple] = []
    for i, item in enumerate(_list(data["constitutions"], shown, "constitutions")):
        w = f"constitutions[{i}]"
        if not isinstance(item, dict):
            raise ConstitutionError(f"{shown}: {w}: expected a mapping with critic and revision, got {_tname(item)}")
        for k in ("critic", "revision"):
            if k not in item:
                raise ConstitutionError(f"{shown}: {w}.{k}: missing")
        critiques.append(
            CritiquePrinciple(
                id=f"hf-{i}",
                critique=_str(item["critic"], shown, f"{w}.critic"),
                revision=_str(item["revision"], shown, f"{w}.revision"),
            )
        )
    if not critiques:
        raise ConstitutionError(f"{shown}: constitutions: empty (need at least one critic/revision pair)")

    few_shot: list[FewShotExample] = []
    chats = data.get("system_chat")
    for i, conv in enumerate(_list(chats, shown, "system_chat") if chats is not None else []):
        w = f"system_chat[{i}]"
        conv = _list(conv, shown, w)
        if len(conv) < 6 or len(conv) % 2:
            raise ConstitutionError(
                f"{shown}: {w}: expected an even number (at least 6) of messages: prompt, answer, "
                f"critique request, critique, revision request, revision; got {len(conv)}"
            )
        turns: list[tuple[str, str]] = []
        for j, msg in enumerate(conv):
            mw = f"{w}[{j}]"
            if not isinstance(msg, dict):
                raise ConstitutionError(f"{shown}: {mw}: expected a mapping with role and content, got {_tname(msg)}")
            for k in ("role", "content"):
                if k not in msg:
                    raise ConstitutionError(f"{shown}: {mw}.{k}: missing")
            want = "user" if j % 2 == 0 else "assistant"
            if msg["role"] != want:
                raise ConstitutionError(f"{shown}: {mw}.role: expected '{want}' (turns alternate), got {msg['role']!r}")
            turns.append((want, _str(msg["content"], shown, f"{mw}.content")))
        body = [c for _, c in turns[-6:]]
        few_shot.append(FewShotExample(*body, history=tuple(turns[:-6])))

    return Constitution(
        name=default_name,
        description=f"Hugging Face CAI recipe constitution ({len(critiques)} critique/revision pairs)",
        critiques=tuple(critiques),
        comparisons=(),
        few_shot=tuple(few_shot),
        source=source,
        format="hf",
    )


# Anthropic paper (anthropics/ConstitutionalHarmlessnessPaper, prompts/).

_ANTHROPIC_LEAD = re.compile(r"^\s*(CritiqueRequest|RevisionRequest)\s*:\s*")
_ANTHROPIC_TAIL = re.compile(r"\s*(Critique|Revision|Options)\s*:\s*$")


def _clean_anthropic(text: str) -> str:
    """Drop the paper's plain-text labels ("CritiqueRequest:", "...Critique:", "...Options:")."""
    text = _ANTHROPIC_LEAD.sub("", text.strip())
    return _ANTHROPIC_TAIL.sub("", text).strip()


def _looks_anthropic_critiques(data: dict) -> bool:
    if not data or any(k in data for k in _NATIVE_TOP):
        return False
    return all(isinstance(v, dict) and ("edit_request" in v or "prompt" in v) for v in data.values())


def _from_anthropic_critiques(data: dict, source: str, shown: str, default_name: str) -> Constitution:
    critiques: list[CritiquePrinciple] = []
    for key, item in data.items():
        for k in ("prompt", "edit_request"):
            if k not in item:
                raise ConstitutionError(f"{shown}: {key}.{k}: missing")
        prompts = item["prompt"]
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = _list(prompts, shown, f"{key}.prompt")
        if not prompts:
            raise ConstitutionError(f"{shown}: {key}.prompt: expected a non-empty list of strings")
        revision = _clean_anthropic(_str(item["edit_request"], shown, f"{key}.edit_request"))
        if not revision:
            raise ConstitutionError(f"{shown}: {key}.edit_request: nothing left after the labels")
        for j, p in enumerate(prompts):
            critique = _clean_anthropic(_str(p, shown, f"{key}.prompt[{j}]"))
            if not critique:
                raise ConstitutionError(f"{shown}: {key}.prompt[{j}]: nothing left after the labels")
            pid = str(key) if len(prompts) == 1 else f"{key}-{j}"
            critiques.append(CritiquePrinciple(id=pid, critique=critique, revision=revision))
    return Constitution(
        name=default_name,
        description=f"Anthropic paper critique/revision instructions ({len(critiques)} pairs)",
        critiques=tuple(critiques),
        comparisons=(),
        few_shot=(),
        source=source,
        format="anthropic",
    )


def _from_anthropic_comparisons(data: list, source: str, shown: str, default_name: str) -> Constitution:
    if any(isinstance(s, str) and ("CritiqueRequest:" in s or "\n\nHuman:" in s) for s in data):
        raise ConstitutionError(
            f"{shown}: looks like an Anthropic few-shot transcript file, not a principle file; "
            "load the critique/revision instructions or the comparison instructions instead"
        )
    comparisons = []
    for i, s in enumerate(data):
        q = _clean_anthropic(_str(s, shown, f"[{i}]"))
        if not q:
            raise ConstitutionError(f"{shown}: [{i}]: nothing left after the labels")
        comparisons.append(ComparisonPrinciple(id=f"anthropic-{i}", question=q))
    return Constitution(
        name=default_name,
        description=f"Anthropic paper comparison instructions ({len(comparisons)} questions)",
        critiques=(),
        comparisons=tuple(comparisons),
        few_shot=(),
        source=source,
        format="anthropic",
    )


# --------------------------------------------------------------------------- sampling


def _key(*parts: Any) -> int:
    blob = json.dumps(list(parts), ensure_ascii=False, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(blob.encode("utf-8")).digest()[:8], "big")


def _permutation(n: int, seed: int, row_id: str, salt: str, cycle: int) -> list[int]:
    return sorted(range(n), key=lambda i: (_key(salt, int(seed), str(row_id), cycle, i), i))


def sample_principle_index(n: int, seed: int, row_id: str, round_index: int, salt: str = "critique") -> int:
    """The principle (0..n-1) for one row and one round; deterministic across processes.

    Each row gets its own seeded shuffle of the n principles and round r takes
    its r-th entry, so rounds 0..n-1 of a row never repeat a principle (the
    original method drew a new principle each round); later rounds use a fresh
    shuffle. Over many rows each round is spread evenly over the principles.
    """
    if n < 1:
        raise ConstitutionError(f"cannot draw a {salt} principle: the constitution has none")
    if round_index < 0:
        raise ValueError(f"round_index must be >= 0, got {round_index}")
    cycle, pos = divmod(round_index, n)
    return _permutation(n, seed, row_id, salt, cycle)[pos]


def sample_principles(n: int, k: int, seed: int, row_id: str, salt: str) -> list[int]:
    """k distinct principle indices for one row (k <= n); deterministic the same way.

    Equals ``[sample_principle_index(n, seed, row_id, r, salt) for r in range(k)]``.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if k > n:
        raise ConstitutionError(f"cannot draw {k} distinct {salt} principles: the constitution has only {n}")
    if k == 0:
        return []
    return _permutation(n, seed, row_id, salt, 0)[:k]


# --------------------------------------------------------------------------- display


def constitution_table(c: Constitution):
    """A rich Table listing every principle, for `cai constitution show`."""
    from rich.table import Table

    title = f"{c.name} [dim]({c.format}, hash {c.hash}, {c.source})[/dim]"
    caption = (
        f"{len(c.critiques)} critique pairs, {len(c.comparisons)} comparison questions, "
        f"{len(c.few_shot)} few-shot examples"
    )
    if c.description:
        caption = f"{c.description}\n{caption}"
    table = Table(title=title, caption=caption, show_lines=True, expand=False)
    table.add_column("kind", style="cyan", no_wrap=True)
    table.add_column("id", style="bold", no_wrap=True)
    table.add_column("text", overflow="fold")
    for p in c.critiques:
        table.add_row("critique", p.id, f"[b]critique:[/b] {_esc(p.critique)}\n[b]revision:[/b] {_esc(p.revision)}")
    for p in c.comparisons:
        table.add_row("comparison", p.id, _esc(p.question))
    for i, ex in enumerate(c.few_shot):
        prompt = ex.prompt if len(ex.prompt) <= 120 else ex.prompt[:117] + "..."
        table.add_row("few-shot", str(i), f"[b]prompt:[/b] {_esc(prompt)}")
    return table


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)
