"""The judge's question, in both layouts (`--format chat` and `--format plain`), worked judgments as earlier
turns, and the letter a generated answer names. See cai_cli/judge/__init__.py for the two layouts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum


class JudgeFormat(str, Enum):
    """--format: chat renders the question with the judge's chat template; plain is the paper's text layout."""

    chat = "chat"
    plain = "plain"


# Chat format: the answer prefix ends inside the parenthesis, so each option is a single token that an
# engine reads from one next-token distribution.
OPTIONS = ("A", "B")
ANSWER_PREFIX = "The answer is: ("
COT_PROMPT = "Think step by step about both responses first, then say which option is better."
COT_ANSWER_PREFIX = "\n\nSo the answer is: ("
# Plain format: the paper's own layout and option strings.
PLAIN_OPTIONS = (" (A)", " (B)")
PLAIN_ANSWER = "\nThe answer is:"
PLAIN_COT_START = "Let's think step-by-step:"
PLAIN_COT_ANSWER = "\nSo the answer is:"
PLAIN_STOP = ["\n\nHuman:"]  # a base model continuing plain text would go on to write the next turn
HEADER = "Consider the following conversation between a human and an assistant:"


# The row's system message is the operator's instructions (a principal beside the user): the judge sees it named so.
ROLE_NAMES = {"user": "Human", "assistant": "Assistant", "system": "Operator (the system message that deployed the assistant)"}


def format_conversation(conv: Sequence[dict]) -> str:
    """The conversation as "Human: ..." / "Assistant: ..." paragraphs; a system message is shown as the operator's."""
    return "\n\n".join(f"{ROLE_NAMES.get(m['role'], m['role'])}: {m['content']}" for m in conv)


def question_block(conv: Sequence[dict], question: str, first: str, second: str) -> str:
    """The multiple-choice question; options (A) and (B) follow the principle's wording directly."""
    return f"{HEADER}\n\n{format_conversation(conv)}\n\n{question}\nOptions:\n(A) {first}\n(B) {second}"


def question_text(conv: Sequence[dict], question: str, first: str, second: str, cot: bool = False) -> str:
    """The chat format's user turn: the question and what to answer."""
    ask = COT_PROMPT if cot else "Answer with (A) or (B)."
    return f"{question_block(conv, question, first, second)}\n\n{ask}"


@dataclass(frozen=True)
class JudgeExample:
    """A worked judgment shown before the real question (--judge-examples)."""

    conversation: tuple[tuple[str, str], ...]
    a: str
    b: str
    answer: str  # "A" or "B"
    question: str | None = None  # None: the principle being asked

    def conv(self) -> list[dict]:
        return [{"role": r, "content": c} for r, c in self.conversation]

    def turns(self, principle_question: str) -> list[dict]:
        text = question_text(self.conv(), self.question or principle_question, self.a, self.b)
        return [{"role": "user", "content": text}, {"role": "assistant", "content": f"{ANSWER_PREFIX}{self.answer})"}]

    def plain(self, principle_question: str) -> str:
        block = question_block(self.conv(), self.question or principle_question, self.a, self.b)
        return f"{block}{PLAIN_ANSWER} ({self.answer})"


def judge_messages(conv, question: str, first: str, second: str, examples: Sequence[JudgeExample] = (), cot: bool = False) -> list[dict]:
    """The chat format's turns: worked examples, then the question."""
    turns: list[dict] = []
    for ex in examples:
        turns += ex.turns(question)
    return turns + [{"role": "user", "content": question_text(conv, question, first, second, cot)}]


def plain_prompt(conv, question: str, first: str, second: str, examples: Sequence[JudgeExample] = (), cot: bool = False) -> str:
    """The plain format's text, up to where the judge continues (the answer, or with `cot` its reasoning)."""
    if cot:
        shots = "".join(
            f"Human: {question_block(ex.conv(), ex.question or question, ex.a, ex.b)}\n\nAssistant: The answer is: ({ex.answer})\n\n" for ex in examples
        )
        return f"{shots}Human: {question_block(conv, question, first, second)}\n\nAssistant: {PLAIN_COT_START}"
    shots = "".join(ex.plain(question) + "\n\n" for ex in examples)
    return f"{shots}{question_block(conv, question, first, second)}{PLAIN_ANSWER}"


def with_plain_stop(sampling):
    """SAMPLING that also stops where a plain-text judge would start the next turn (PLAIN_STOP)."""
    return replace(sampling, stop=list(sampling.stop) + [s for s in PLAIN_STOP if s not in sampling.stop])


_ANSWER = re.compile(r"\(\s*([AB])\s*\)|\b(?i:option|response|answer)\s*:?\s*\(?([AB])\b|^\s*([AB])\b")


def parse_answer(text: str) -> str | None:
    """'A' or 'B' from a generated answer ("The answer is (B)", "Option A", "B."), or None."""
    m = _ANSWER.search(text)
    if not m:
        return None
    return next(g for g in m.groups() if g)
