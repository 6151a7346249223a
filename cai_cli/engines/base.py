"""The engine interface every back end implements: chat generation and option scoring."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Annotated, Protocol, Sequence

from ..errors import EngineError
from ..flags import MAX_TOKENS, SAMPLING_PANEL, SEED, TEMPERATURE, Flag

Message = dict  # {"role": ..., "content": ...}
Conversation = list[Message]


class EngineName(str, Enum):
    """The built-in back ends --engine names (engines registered with register_engine come on top)."""

    auto = "auto"  # vllm when it imports and a GPU is present, else transformers
    transformers = "transformers"
    vllm = "vllm"
    openai = "openai"


class Dtype(str, Enum):
    """--dtype: auto is float32 on CPU, bfloat16/float16 on GPU."""

    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


@dataclass
class Sampling:
    """How replies are sampled. These defaults suit a model of useful size; a model may have its own
    (model_specs.sampling_defaults: the embedded 135M model's), which sampling_for applies."""

    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 1024  # room for real answers (the HF recipe allowed 1,500 for revisions); --max-tokens
    seed: int = 0
    n: int = 1
    stop: list[str] = field(default_factory=list)
    # OpenAI's penalties on the reply's own tokens: per earlier use (frequency) and once used at all (presence).
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0

    def as_meta(self) -> dict:
        return asdict(self)


def _default(name: str) -> str:
    """The default --help shows for a Sampling field: the general one, and the embedded model's where it differs."""
    from ..model_specs import EMBEDDED_SAMPLING

    general = getattr(Sampling, name)
    own = EMBEDDED_SAMPLING.get(name, general)
    return str(general) if own == general else f"{general}; {own} with the embedded model and models trained from it"


@dataclass
class SamplingOptions:
    """The sampling options as given (None: not given: the model's own default applies, else Sampling's; see
    sampling_for). --n is each command's own (generate: samples per prompt; plan: candidates)."""

    temperature: Annotated[float | None, replace(TEMPERATURE, show_default=_default("temperature"))] = None
    top_p: Annotated[float | None, Flag(min=0.0, max=1.0, show_default=_default("top_p"), panel=SAMPLING_PANEL)] = None
    max_tokens: Annotated[int | None, replace(MAX_TOKENS, show_default=_default("max_tokens"))] = None
    frequency_penalty: Annotated[float | None, Flag(
        min=-2.0, max=2.0, show_default=_default("frequency_penalty"), panel=SAMPLING_PANEL,
        help="Lowers a token's logit by this much per earlier use in the same reply (OpenAI's penalty; against loops).",
    )] = None
    presence_penalty: Annotated[float | None, Flag(
        min=-2.0, max=2.0, show_default=_default("presence_penalty"), panel=SAMPLING_PANEL,
        help="Lowers the logit of every token already used in the reply by this much (OpenAI's penalty).",
    )] = None
    seed: Annotated[int, SEED] = 0
    stop: Annotated[list[str], Flag(help="Stop string (repeatable).", panel=SAMPLING_PANEL)] = field(default_factory=list)

    def sampling(self, model: str | None, engine: str, n: int = 1) -> Sampling:
        return sampling_for(model, engine, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens,
                            frequency_penalty=self.frequency_penalty, presence_penalty=self.presence_penalty, seed=self.seed, n=n,
                            stop=list(self.stop))


def sampling_for(model: str | None, engine: str, **given) -> Sampling:
    """Sampling from the options GIVEN (None: not given) over the defaults that suit MODEL (model_specs.sampling_defaults)
    and then Sampling's own. With the openai engine and no --model the server's model is unknown: no model defaults."""
    from ..model_specs import sampling_defaults

    defaults = sampling_defaults(model) if (model or engine != EngineName.openai) else {}
    return Sampling(**{**defaults, **{k: v for k, v in given.items() if v is not None}})


@dataclass
class Completion:
    """The n sampled replies to one conversation, with token counts."""

    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None  # set when this one conversation failed (e.g. a server kept refusing it)
    # Why each text stopped, one per text: "stop" (end of turn or a stop string) or "length" (cut at max_tokens).
    finish_reasons: list[str] = field(default_factory=list)
    cached_tokens: int = 0  # prompt tokens reused from a prefix cache, where the back end reports it

    @property
    def truncated(self) -> int:
        return sum(1 for r in self.finish_reasons if r == "length")


class Engine(Protocol):
    name: str
    model: str

    @property
    def max_context(self) -> int | None: ...

    def chat(self, conversations: Sequence[Conversation], sampling: Sampling, seeds: Sequence[int] | None = None) -> list[Completion]:
        """One Completion per conversation, in order; batched as the back end sees fit.

        seeds: one per conversation. A conversation's samples depend on its own seed (and sampling) alone,
        never on which other conversations share its batch, so batch size, shards and resumes do not
        change rows. None: derive them from sampling.seed and the position (reproducible for one batching only).
        """

    def score_options(self, prompts: Sequence[str], options: Sequence[str]) -> list[list[float]]:
        """Sum of log-probs of each option continuing each (already rendered) prompt; no decoding."""

    def render_chat(self, conversation: Conversation, add_generation_prompt: bool = True) -> str:
        """The conversation as the model's chat template renders it (for option scoring)."""

    def count_tokens(self, conversation: Conversation) -> int:
        """Prompt length in tokens, to catch rows longer than the context before any work."""

    def close(self) -> None: ...


def seeds_or_default(seeds: Sequence[int] | None, sampling: Sampling, count: int) -> list[int]:
    """The per-conversation seeds a back end uses: the caller's, or sampling.seed + position."""
    if seeds is None:
        return [sampling.seed + i for i in range(count)]
    if len(seeds) != count:
        raise ValueError(f"chat: {count} conversations but {len(seeds)} seeds")
    return [int(s) for s in seeds]


def option_continuation(prompt_ids: Sequence[int], full_ids: Sequence[int], option: str) -> tuple[list[int], list[int]]:
    """(context, option tokens) from the tokens of a prompt and of prompt + option, split where they part.

    The option's tokens are what the model would write after the prompt, which for SentencePiece
    tokenizers differ from the option tokenised alone ("A" after "(" is `A`, alone it is `▁A`). Where
    the tokenizer merges the prompt's last characters with the option's first, the merged token
    belongs to the option and the context is the shorter common part. Every engine scores this split.
    """
    common = 0
    while common < min(len(full_ids), len(prompt_ids)) and full_ids[common] == prompt_ids[common]:
        common += 1
    if common == len(full_ids):
        raise EngineError(f"score_options: option {option!r} adds no token after the prompt")
    if common == 0:
        raise EngineError("score_options: an empty prompt (or one the option merges into whole) gives the option no context to be scored in")
    return list(full_ids[:common]), list(full_ids[common:])


def render_with_tokenizer(tokenizer, conversation: Conversation, add_generation_prompt: bool = True) -> str:
    """A conversation rendered by a Hugging Face tokenizer's chat template, as the transformers engine renders it."""
    if not getattr(tokenizer, "chat_template", None):
        # Base models have no template: plain "Role: text" turns, ending on the assistant's turn.
        text = "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in conversation)
        return text + ("Assistant:" if add_generation_prompt else "")
    return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=add_generation_prompt)
