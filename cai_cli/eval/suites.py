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

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from ..errors import CaiError
from ..jsonl import BadField, InputLine, InputSource
from .summary import BENIGN, RED_TEAM


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


class SuiteRows:
    """Each record of SUITE's CSV as an eval prompt row (InputSource's `convert` for a benchmark file read with
    `table=True`): the columns are matched to the published ones whatever their case, and a file without the columns
    the benchmark publishes stops the run in one line. KIND is the set the option that named the file implies
    (`benign` for --benign), used where the file cannot say. A bad cell is a BadField naming its column."""

    def __init__(self, suite: Suite | str, kind: str | None):
        self.suite = Suite(suite)
        self.fmt = FORMATS[self.suite]
        self.kind = kind
        fmt = self.fmt
        self.published = {c.lower(): c for c in (*fmt.required, fmt.prompt, fmt.category, "Index", "id", "id_v2", "label", "type")}

    def __call__(self, record: dict, name: str, line: int) -> dict:
        fmt = self.fmt
        rename = {col: self.published.get(col.strip().lower(), col) for col in record}
        missing = [c for c in fmt.required if c not in rename.values()]
        if missing:
            raise CaiError(f"{name}: not {fmt.title}: no column {', '.join(missing)} (columns: {', '.join(record)})")
        try:
            return _prompt_row({rename[k]: v for k, v in record.items()}, fmt, self.kind)
        except BadValue as bad:
            raise BadField(bad.column, bad.message) from None


def read_suite(path: str, suite: Suite | str, kind: str | None) -> list[InputLine]:
    """Every record of SUITE's CSV at PATH as an eval prompt row, or an error naming its line and column (for a
    reader outside a run; `cai eval --suite` reads the files through its runs)."""
    source = InputSource(path, table=True, convert=SuiteRows(suite, kind))
    try:
        return [item for item in source.lines() if item is not None]
    finally:
        source.close()


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
