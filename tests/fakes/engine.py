"""The fake engine: one scripted model, registered as `--engine fake` by importing this module (in this process, or in a
`cai` subprocess through CAI_ENGINE_PLUGINS=fakes.engine, see FAKE_ENV in tests/runs.py). Importable without pytest."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import ClassVar

from cai_cli.engines import register_engine

NOISE_ENV = "CAI_FAKE_NOISE"
DELAY_ENV = "CAI_FAKE_DELAY"


class FakeEngine:
    """The one scripted model of the tests, registered like a real back end (`--engine fake`).

    Every test that needs a fake model scripts this one, through the `fake_engine` fixture (the class,
    reset before and after each test), and starts it as a real engine is started: `--engine fake`,
    `load_engine(EngineOptions(engine="fake"))`, or `FakeEngine(opts)` for a stage's `engine`.

    chat: each reply is `reply(conversation, seed)`, or `replies[model](conversation, seed)` for a model named
    in `replies` (eval compares two scripted models): by default "fake reply <seed> to: <last message>", so a
    row's text depends on its own seed and prompt alone, as the Engine contract asks; replies longer than
    --max-tokens words are cut and report finish_reason "length". Tokens are words.
    complete (plain-text continuation): `continuation(prompt, seed)`; set `complete = None` for an engine
    that can only chat.
    score_options: `scorer(prompt, options)` -> log-probs; by default the option whose text last appears
    in the prompt wins (ties: the first), so a judge prompt that quotes one answer more often prefers it.
    render_chat: "<role>content</role>" per message, then "<assistant>".
    In a subprocess, CAI_FAKE_NOISE=1 makes it print to stdout as engines and their libraries do (print, a write to
    file descriptor 1, C's printf, and at exit), and CAI_FAKE_DELAY=S makes each call take S seconds (a run slow
    enough to kill at random moments).
    `calls` counts what was asked (chat: conversations, score: prompts); `log` keeps it: chats (conversations),
    scored (prompts), options (per scoring call), completed (prompts), batches (conversations per chat call),
    started (the model of each engine started: a loaded set of weights).
    """

    name = "fake"
    max_context: ClassVar[int | None] = 4096
    reply: ClassVar[Callable[[list[dict], int], str]]
    replies: ClassVar[dict[str, Callable[[list[dict], int], str]]] = {}
    continuation: ClassVar[Callable[[str, int], str]]
    scorer: ClassVar[Callable[[str, Sequence[str]], list[float]]]
    calls: ClassVar[dict[str, int]] = {}
    log: ClassVar[dict[str, list]] = {}

    def __init__(self, opts=None):
        self.model = getattr(opts, "model", None) or "fake-model"
        type(self).log["started"].append(self.model)
        self.noisy = bool(os.environ.get(NOISE_ENV))
        self.delay = float(os.environ.get(DELAY_ENV) or 0)
        self.noise("loading the fake model")
        if self.noisy:
            import atexit

            atexit.register(print, "fake engine: shutting down")

    def noise(self, what: str) -> None:
        """What a real engine prints while it loads and works (vLLM's logging, a C library's printf)."""
        if self.noisy:
            import ctypes

            print(f"fake engine: {what}")
            os.write(1, f"fake engine (fd 1): {what}\n".encode())
            ctypes.CDLL(None).printf(f"fake engine (C printf): {what}\n".encode())
        if self.delay:
            import time

            time.sleep(self.delay)

    @staticmethod
    def default_reply(conversation: list[dict], seed: int) -> str:
        return f"fake reply {seed} to: {conversation[-1]['content'].splitlines()[-1][:60]}"

    @staticmethod
    def default_continuation(prompt: str, seed: int) -> str:
        return f" fake continuation {seed}"

    @staticmethod
    def default_scorer(prompt: str, options: Sequence[str]) -> list[float]:
        best = max(range(len(options)), key=lambda i: (prompt.rfind(options[i].strip()), -i))
        return [math.log(0.8) if i == best else math.log(0.2 / max(1, len(options) - 1)) for i in range(len(options))]

    @staticmethod
    def _texts(make: Callable[[int], str], sampling) -> tuple[list[str], list[str]]:
        """SAMPLING.n texts, each cut at --max-tokens words (leading whitespace kept), with their finish reasons."""
        texts, reasons = [], []
        for i in range(sampling.n):
            text = make(i)
            words = text.split()
            texts.append(text[: len(text) - len(text.lstrip())] + " ".join(words[: sampling.max_tokens]))
            reasons.append("length" if len(words) > sampling.max_tokens else "stop")
        return texts, reasons

    def chat(self, conversations, sampling, seeds=None):
        from cai_cli.engines.base import Completion, seeds_or_default

        cls = type(self)
        self.noise(f"chat, {len(conversations)} conversations")
        cls.calls["chat"] = cls.calls.get("chat", 0) + len(conversations)
        cls.log["chats"] += conversations
        cls.log["batches"].append(len(conversations))
        reply = cls.replies.get(self.model, cls.reply)
        out = []
        for conv, seed in zip(conversations, seeds_or_default(seeds, sampling, len(conversations))):
            texts, reasons = self._texts(lambda i, conv=conv, seed=seed: reply(conv, seed * 1000 + i), sampling)
            prompt_tokens = sum(len(m["content"].split()) for m in conv)
            out.append(Completion(texts, prompt_tokens, sum(len(t.split()) for t in texts), finish_reasons=reasons))
        return out

    def _complete(self, prompts, sampling, seeds=None):
        from cai_cli.engines.base import Completion, seeds_or_default

        cls = type(self)
        self.noise(f"complete, {len(prompts)} prompts")
        cls.calls["complete"] = cls.calls.get("complete", 0) + len(prompts)
        cls.log["completed"] += prompts
        out = []
        for prompt, seed in zip(prompts, seeds_or_default(seeds, sampling, len(prompts))):
            texts, reasons = self._texts(lambda i, prompt=prompt, seed=seed: cls.continuation(prompt, seed * 1000 + i), sampling)
            out.append(Completion(texts, len(prompt.split()), sum(len(t.split()) for t in texts), finish_reasons=reasons))
        return out

    complete: ClassVar[Callable | None] = _complete

    def score_options(self, prompts, options):
        cls = type(self)
        self.noise(f"score, {len(prompts)} prompts")
        cls.calls["score"] = cls.calls.get("score", 0) + len(prompts)
        cls.log["scored"] += prompts
        cls.log["options"].append(list(options))
        return [list(cls.scorer(p, options)) for p in prompts]

    def render_chat(self, conversation, add_generation_prompt=True):
        text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>\n" for m in conversation)
        return text + ("<assistant>" if add_generation_prompt else "")

    def count_tokens(self, conversation):
        return len(self.render_chat(conversation).split())

    def close(self):
        pass


def reset_fake_engine() -> type[FakeEngine]:
    FakeEngine.reply = staticmethod(FakeEngine.default_reply)
    FakeEngine.replies = {}
    FakeEngine.continuation = staticmethod(FakeEngine.default_continuation)
    FakeEngine.scorer = staticmethod(FakeEngine.default_scorer)
    FakeEngine.complete = FakeEngine._complete
    FakeEngine.max_context = 4096
    FakeEngine.calls = {"chat": 0, "score": 0}
    FakeEngine.log = {"chats": [], "scored": [], "options": [], "completed": [], "batches": [], "started": []}
    return FakeEngine


def yes_no_scorer(p_yes: Callable[[str], float | None], lean: float = 0.0) -> Callable[[str, Sequence[str]], list[float]]:
    """A scorer of " Yes"/" No" questions: P(yes) = p_yes(prompt) (None: no probability for either), plus a constant
    LEAN towards "Yes" in log-odds, the bias a scored yes/no pair must cancel."""

    def score(prompt: str, options: Sequence[str]) -> list[float]:
        assert list(options) == [" Yes", " No"], options
        p = p_yes(prompt)
        if p is None:
            return [-math.inf, -math.inf]
        return [math.log(p) + lean, math.log(1.0 - p)]

    return score


reset_fake_engine()
register_engine("fake", FakeEngine)
