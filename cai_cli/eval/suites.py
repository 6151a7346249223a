"""The community's safety benchmarks, read from the files their authors publish (`cai eval --suite NAME`).

Each benchmark's prompt file is read as it is released, a CSV, and mapped to eval prompt rows: `prompt`,
`category`, `eval_set` (red_team or benign) and, on benign prompts built to look risky, `risky_looking: true`
(they count in over-refusal). Every column of the file is kept in the row. Nothing is downloaded: the user
gives the file. Column names were checked against the released files (cited in docs/eval.md):

- XSTest (Röttger et al. 2024), `xstest_prompts.csv`: `id,prompt,type,label,focus,note`. `label` is `safe`
  (benign, risky-looking) or `unsafe` (red-team); `type` (homonyms, contrast_homonyms, …) is the category. The
  earlier `xstest_v2_prompts.csv` has no `label`: its `contrast_*` types are the unsafe ones.
- StrongREJECT (Souly et al. 2024), `strongreject_dataset.csv` and `strongreject_small_dataset.csv`:
  `category,source,forbidden_prompt`; every prompt is red-team.
- JailbreakBench (Chao et al. 2024), JBB-Behaviors `harmful-behaviors.csv` and `benign-behaviors.csv`:
  `Index,Goal,Target,Behavior,Category,Source`; `Goal` is the prompt. Both files share the columns, so the
  option that names the file says which set it is: `--prompts` red-team, `--benign` benign (risky-looking).
- OR-Bench (Cui et al. 2024), `or-bench-hard-1k.csv`, `or-bench-80k.csv` and `or-bench-toxic.csv`:
  `prompt,category`; likewise `--benign` for the seemingly toxic sets (hard-1k, 80k), `--prompts` for toxic.

Column names are matched without regard to case (re-exports differ in that alone).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ..errors import CaiError, InputError
from ..jsonl import InputLine, display_name
from .stats import BENIGN, RED_TEAM


class Suite(str, Enum):
    """--suite: the benchmark whose published prompt CSV every prompt file of the run is."""

    xstest = "xstest"
    strongreject = "strongreject"
    jailbreakbench = "jailbreakbench"
    or_bench = "or-bench"


class BadValue(Exception):
    """A cell that cannot be mapped; the reader adds file and line."""

    def __init__(self, column: str, message: str):
        super().__init__(message)
        self.column, self.message = column, message


@dataclass(frozen=True)
class SuiteFormat:
    title: str  # what the file is, for messages
    prompt: str  # the column holding the prompt
    category: str  # the column holding the category
    required: tuple[str, ...]  # columns a file must have
    eval_set: Callable[[dict, str | None], str]  # (row, the option's set) -> red_team or benign
    id_of: Callable[[dict, str], str | None] | None = None  # (row, eval set) -> the row's id; None: a hash of the prompt


def _xstest_set(row: dict, kind: str | None) -> str:
    label = row.get("label")
    if label is not None:
        value = label.strip().lower()
        if value not in ("safe", "unsafe"):
            raise BadValue("label", f"expected safe or unsafe, got {label!r}")
        return BENIGN if value == "safe" else RED_TEAM
    # the first v2 release had no label column: the contrast types are the unsafe prompts
    return RED_TEAM if row["type"].strip().lower().startswith("contrast") else BENIGN


def _by_option(row: dict, kind: str | None) -> str:
    # Both files of the benchmark share their columns: --benign names the benign one, --prompts the other.
    return BENIGN if kind == BENIGN else RED_TEAM


def _xstest_id(row: dict, eval_set: str) -> str | None:
    found = row.get("id") or row.get("id_v2")
    return f"xstest-{found}" if found else None


def _jbb_id(row: dict, eval_set: str) -> str | None:
    index = row.get("Index")
    return f"jbb-{'benign' if eval_set == BENIGN else 'harmful'}-{index}" if index else None


FORMATS: dict[Suite, SuiteFormat] = {
    Suite.xstest: SuiteFormat("XSTest's prompts CSV (xstest_prompts.csv)", "prompt", "type", ("prompt", "type"), _xstest_set, _xstest_id),
    Suite.strongreject: SuiteFormat(
        "StrongREJECT's CSV (strongreject_dataset.csv)", "forbidden_prompt", "category", ("category", "forbidden_prompt"), lambda row, kind: RED_TEAM
    ),
    Suite.jailbreakbench: SuiteFormat(
        "a JailbreakBench behaviours CSV (harmful-behaviors.csv, benign-behaviors.csv)", "Goal", "Category", ("Goal", "Category"), _by_option, _jbb_id
    ),
    Suite.or_bench: SuiteFormat("an OR-Bench CSV (or-bench-hard-1k.csv, or-bench-toxic.csv)", "prompt", "category", ("prompt", "category"), _by_option),
}


def read_suite(path: str | None, suite: Suite | str, kind: str | None) -> list[InputLine]:
    """Every record of SUITE's CSV at PATH as an eval prompt row (a bad record as an error naming its line and column).
    KIND is the set the option that named the file implies (`benign` for --benign), used where the file cannot say."""
    suite = Suite(suite)
    fmt = FORMATS[suite]
    if path in (None, "-"):
        raise CaiError(f"--suite {suite.value} reads {fmt.title}: give the file with --prompts (or --benign), not stdin")
    name = display_name(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CaiError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise CaiError(f"{name}: is a folder; give {fmt.title}") from None
    except UnicodeDecodeError as exc:
        raise CaiError(f"{name}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); expected {fmt.title}") from None
    reader = csv.DictReader(text.splitlines(keepends=True))
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise CaiError(f"{name}:1: not a CSV header ({exc}); expected {fmt.title}") from None
    # The published names, whatever the case of this copy's header.
    published = {c.lower(): c for c in (*fmt.required, fmt.prompt, fmt.category, "Index", "id", "id_v2", "label", "type")}
    rename = {col: published.get(col.strip().lower(), col) for col in header}
    missing = [c for c in fmt.required if c not in rename.values()]
    if not header or missing:
        found = ", ".join(header) if header else "none: the file is empty"
        raise CaiError(f"{name}: not {fmt.title}: no column {', '.join(missing or fmt.required)} (columns: {found})")
    out: list[InputLine] = []
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise CaiError(f"{name}:{start}: not valid CSV ({exc})") from None
        row = {rename.get(k, k): v for k, v in record.items() if k is not None}
        try:
            out.append(InputLine(start, _prompt_row(row, fmt, kind), None))
        except BadValue as bad:
            out.append(InputLine(start, None, InputError(bad.message, file=name, line=start, field=bad.column), ",".join(v or "" for v in row.values())))
    return out


def _prompt_row(row: dict, fmt: SuiteFormat, kind: str | None) -> dict:
    """One CSV record as an eval prompt row, every column kept."""
    prompt = row.get(fmt.prompt)
    if not prompt or not prompt.strip():
        raise BadValue(fmt.prompt, "empty: the prompt is missing")
    eval_set = fmt.eval_set(row, kind)
    category = (row.get(fmt.category) or "").strip() or None
    out = {k: v for k, v in row.items() if v is not None}
    out.update(prompt=prompt, category=category, eval_set=eval_set)
    if eval_set == BENIGN:
        out["risky_looking"] = True  # every benign prompt of these benchmarks is built to look harmful
    rid = fmt.id_of(row, eval_set) if fmt.id_of else None
    if rid:
        out["id"] = rid
    else:
        out.pop("id", None)  # the loader gives it the hash of the prompt
    return out
