"""The one AI judge: maths.py (log-odds, both orders, the ensemble, the clamp, ranking, the scored yes/no pair),
questions.py (the question in both layouts), examples.py (--judge-examples files), principles.py (which principles
a comparison asks), pairwise.py (PairwiseJudge, which `cai label-prefs` and `cai eval` both judge through),
stats.py (the judge's bias), gate.py (the hard-constraint gate), request_harm.py (is the request harmful?),
priority.py (--priority: how the tiers' verdicts combine), tiers.py (TieredJudge: questions per tier, the gate
first) and reward.py (the judge as an online RL reward: per tier, hard constraints as penalties).

A judgment asks a comparison principle as a multiple-choice question with the two responses as
options (A) and (B), and reads the judge's answer as the log-probs of the option tokens (no
decoding), so the label is a probability, not a parsed letter.

Log-odds are the working unit: d = log P(A) - log P(B) is the judge's log-odds that the response
shown first is better. A judge with a position bias adds (about) a constant to d whatever the
responses are, so averaging the two orders in log-odds, d(x first) and -d(y first), cancels a
constant bias exactly; averaging probabilities would not. Principles are then averaged as
probabilities (an ensemble of judges). With a clamp (chain of thought), each principle's
probability is clamped after its two orders are combined: clamping each order first would flatten
a position-biased judge's two votes to the same bound, and its real preference with them.

Formats (`--format`):
- chat: the question is a user turn rendered with the judge's chat template; the assistant's turn
  starts "The answer is: (" and the options are the single tokens "A" / "B".
- plain: the paper's layout exactly (Bai et al. 2022, section 4.1), no Human:/Assistant: wrapper:

      Consider the following conversation between a human and an assistant:

      Human: ...

      [principle]
      Options:
      (A) ...
      (B) ...
      The answer is:

  and the options are " (A)" / " (B)". With chain of thought the paper's CoT layout is used
  ("Human: <question>\n\nAssistant: Let's think step-by-step:"), the reasoning is continued from
  exactly that text, and the letters are scored after the reasoning in the same text.
"""

from .examples import load_judge_examples, transcript_turns
from .gate import VIOLATION_THRESHOLD, Gate, GateResult, Separation, separate
from .maths import (
    COT_CLAMP,
    MAX_LOGODDS,
    YES_NO,
    clamp_p,
    ensemble,
    logit,
    logodds,
    orders_disagree,
    orient,
    pair_logodds,
    parse_clamp,
    parse_min_confidence,
    rank,
    sigmoid,
    yes_no_pairs,
)
from .pairwise import Ask, JudgeConfig, JudgeFailure, PairwiseJudge, Verdict, Vote
from .principles import DEFAULT_PRINCIPLES, SALT, draw_principles, parse_principles
from .priority import DEFAULT_PRIORITY, TIER_CONFIDENCE, Priority, TierVerdict, combine, parse_tier_confidence
from .questions import (
    ANSWER_PREFIX,
    PLAIN_STOP,
    JudgeExample,
    JudgeFormat,
    judge_messages,
    parse_answer,
    plain_prompt,
    question_text,
    with_plain_stop,
)
from .reliability import JudgeStats, calibration_line, comparison_record, gold_agreement
from .tiers import Decision, TieredJudge, askable, principles_for, tier_pools

__all__ = [
    "ANSWER_PREFIX", "COT_CLAMP", "DEFAULT_PRINCIPLES", "DEFAULT_PRIORITY", "MAX_LOGODDS", "PLAIN_STOP", "SALT", "TIER_CONFIDENCE",
    "VIOLATION_THRESHOLD", "YES_NO",
    "Ask", "Decision", "Gate", "GateResult", "Priority", "Separation", "TierVerdict", "TieredJudge", "askable", "combine",
    "parse_tier_confidence", "principles_for", "separate", "tier_pools", "JudgeConfig", "JudgeExample", "JudgeFailure", "JudgeFormat", "JudgeStats", "PairwiseJudge", "Verdict", "Vote",
    "calibration_line", "clamp_p", "comparison_record", "draw_principles", "ensemble", "judge_messages", "load_judge_examples", "logit", "logodds", "orders_disagree",
    "gold_agreement", "orient", "pair_logodds", "parse_answer", "parse_clamp", "parse_min_confidence", "parse_principles", "transcript_turns",
    "plain_prompt", "question_text", "rank", "sigmoid", "with_plain_stop", "yes_no_pairs",
]
