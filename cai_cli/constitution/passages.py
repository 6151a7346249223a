"""A document's sections split into passages: what routing ranks and what the critic, the reviser and the judge are
shown, whole.

A passage holds at most `budget` tokens of one section's text (estimated, below), carries its heading path, and is
cut only between Markdown blocks (paragraphs, lists, code blocks, quotes, tables), never inside a list and never
after a lead-in (a paragraph ending in a colon, "Broadly safe behaviors include:", stays with the block it
introduces). A paragraph longer than the budget is cut between sentences; a list, code block or table longer than
the budget is kept whole, over budget (`cai constitution lint` names it). A section that fits the budget is one
passage whose id is the section's; a longer one gives `<section id>#1`, `#2`, ...

The budget is sized from the model's context (`passage_budget`: an eighth of it, at most MAX_PASSAGE_TOKENS, at
least MIN_PASSAGE_TOKENS) unless `--passage-tokens` says otherwise. Tokens are estimated from the characters
(ESTIMATE_CHARS per token, rounded up), not counted with the model's tokenizer, so the split is known before any
model loads and is the same in every process; the prompt that quotes a passage is still checked against the
model's real context before any work.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .model import short_hash

ESTIMATE_CHARS = 4  # characters per token: English prose in the usual subword vocabularies
MAX_PASSAGE_TOKENS = 512
MIN_PASSAGE_TOKENS = 128
CONTEXT_SHARE = 8  # a passage takes at most an eighth of the context: the conversation, the answer, the request
MIN_OVERRIDE = 32  # --passage-tokens below this would cut prose into scraps of a sentence
DEFAULT_CONTEXT = 4096  # where the model's context is not known before it loads (a server)
PART = "#"  # "<section id>#2": the second passage of a split section

_SENTENCE_END = re.compile(r"[.!?][\"')\]*_]*(\s+)(?=[A-Z0-9\"'(\[*_])")


def estimate_tokens(text: str) -> int:
    """About how many tokens TEXT takes (ESTIMATE_CHARS characters a token, rounded up)."""
    return math.ceil(len(text) / ESTIMATE_CHARS)


def passage_budget(context: int | None) -> int:
    """The passage budget for a model with CONTEXT tokens (None: unknown, DEFAULT_CONTEXT is assumed)."""
    return max(MIN_PASSAGE_TOKENS, min(MAX_PASSAGE_TOKENS, (context or DEFAULT_CONTEXT) // CONTEXT_SHARE))


DEFAULT_PASSAGE_TOKENS = passage_budget(None)


def budget_for(model: str | None, max_model_len: int | None = None, override: int | None = None) -> int:
    """The passage budget a run uses: OVERRIDE (--passage-tokens) where given, else sized from the context of MODEL
    as known before it loads (models.context_length; DEFAULT_CONTEXT where unknown)."""
    if override is not None:
        if override < MIN_OVERRIDE:
            from ..errors import CaiError

            raise CaiError(f"--passage-tokens: expected a number of tokens of at least {MIN_OVERRIDE}, got {override}")
        return int(override)
    from ..model_specs import context_length

    return passage_budget(context_length(model, max_model_len))


@dataclass(frozen=True)
class Passage:
    """One passage of a section: ``id`` (the section's id, or ``<section>#<n>`` when the section is split), ``section``
    (its section's id), ``path`` (the heading path), ``index`` and ``count`` (n of the section's passages), ``text``
    (the Markdown as written) and the section's ``tier``, ``when`` and ``routed``."""

    id: str
    section: str
    path: tuple[str, ...]
    index: int
    count: int
    text: str
    tier: str | None = None
    when: str = "always"
    routed: bool = True

    @property
    def heading(self) -> str:
        """The heading path as people read it, with the part where the section is split: "A › B (part 2 of 3)"."""
        head = " › ".join(self.path)
        return head if self.count == 1 else f"{head} (part {self.index} of {self.count})"

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.text)

    @property
    def hash(self) -> str:
        """Content hash of what a model is shown of it: the heading path and the text."""
        return short_hash({"path": list(self.path), "part": [self.index, self.count], "text": self.text})

    def ends_in_lead_in(self) -> bool:
        """Whether the passage stops right after a lead-in (its last paragraph ends in a colon)."""
        return _is_lead_in(self.text.rstrip().rsplit("\n\n", 1)[-1])


@dataclass
class Block:
    """A top-level Markdown block of a section's text: its kind and its text as written."""

    kind: str  # "paragraph", "list", "code", "quote", "table", "other"
    text: str

    @property
    def lead_in(self) -> bool:
        return self.kind == "paragraph" and _is_lead_in(self.text)


def _is_lead_in(text: str) -> bool:
    return text.rstrip().rstrip("*_").endswith(":")


_KINDS = {"paragraph_open": "paragraph", "bullet_list_open": "list", "ordered_list_open": "list", "fence": "code",
          "code_block": "code", "blockquote_open": "quote", "table_open": "table"}


def blocks(text: str) -> list[Block]:
    """The top-level blocks of TEXT (Markdown), in order, each with the lines it spans."""
    from markdown_it import MarkdownIt

    lines = text.splitlines()
    out: list[Block] = []
    for tok in MarkdownIt("commonmark").enable("table").parse(text):
        if tok.level != 0 or tok.map is None or tok.nesting == -1 or tok.type == "hr":  # a rule is layout, not words
            continue
        start, end = tok.map
        out.append(Block(_KINDS.get(tok.type, "other"), "\n".join(lines[start:end]).strip()))
    return [b for b in out if b.text]


def _units(text: str, budget: int) -> list[str]:
    """The pieces a passage is made of: blocks, a lead-in joined to the block it introduces, a paragraph over the
    budget cut between sentences. No piece is cut inside a list, code block, quote or table."""
    units: list[str] = []
    pending = ""  # lead-ins waiting for the block they introduce
    for block in blocks(text):
        if block.lead_in:
            pending = f"{pending}\n\n{block.text}" if pending else block.text
            continue
        if pending:
            units.append(f"{pending}\n\n{block.text}")
            pending = ""
        elif block.kind == "paragraph" and estimate_tokens(block.text) > budget:
            units += _sentences(block.text, budget)
        else:
            units.append(block.text)
    if pending:  # a section that ends on a lead-in: nothing follows it to keep it with
        units.append(pending)
    return units


def _sentences(paragraph: str, budget: int) -> list[str]:
    """A paragraph over the budget as runs of whole sentences (as written), each within it (a longer sentence alone)."""
    cuts = [m.start(1) for m in _SENTENCE_END.finditer(paragraph)] + [len(paragraph)]
    out: list[str] = []
    start = run = 0  # the run being built starts at `run`; the next sentence at `start`
    for end in cuts:
        if start > run and estimate_tokens(paragraph[run:end].strip()) > budget:
            out.append(paragraph[run:start].strip())
            run = start
        start = end
    out.append(paragraph[run:].strip())
    return [x for x in out if x]


def split_text(text: str, budget: int) -> list[str]:
    """TEXT (a section's Markdown) as passage texts of at most BUDGET estimated tokens each where its blocks allow.

    Pieces are packed greedily towards an even size (the total over the number of passages the budget needs), so a
    long section does not end in a scrap."""
    text = text.strip()
    if not text:
        return []
    if estimate_tokens(text) <= budget:
        return [text]
    units = _units(text, budget)
    target = estimate_tokens(text) / math.ceil(estimate_tokens(text) / budget)
    out: list[str] = []
    for unit in units:
        if out:
            joined = f"{out[-1]}\n\n{unit}"
            if estimate_tokens(joined) <= budget and estimate_tokens(out[-1]) < target:
                out[-1] = joined
                continue
        out.append(unit)
    return out


def section_passages(section, budget: int) -> list[Passage]:
    """SECTION (a model.Section) as its passages under BUDGET."""
    texts = split_text(section.text, budget)
    n = len(texts)
    return [Passage(section.id if n == 1 else f"{section.id}{PART}{i}", section.id, section.path, i, n, t,
                    section.tier, section.when, section.routed)
            for i, t in enumerate(texts, 1)]

