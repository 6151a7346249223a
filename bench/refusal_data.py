"""The human-labelled replies the refusal detector is trained and measured on: where each comes from,
how its labels map to declined/answered, and the fixed split of each into train, dev and held-out.

Nothing here is committed data. The files are fetched once into a folder (default
/work/shared/refusal-data, or $CAI_REFUSAL_DATA, or --data), laid out as that folder's README says:

    rbr_gold_data/train.jsonl, test.jsonl     OpenAI Safety RBR gold set (MIT): github.com/openai/safety-rbr-code-and-data,
                                              data/rbr_gold_data/. 518 GPT-written completions to safety prompts, each
                                              annotated by people with yes/no propositions.
    chatgpt-refusals/all_hand_labeled.json    Reuter & Schulze 2023, "I'm Afraid I Can't Do That" (MIT):
                                              github.com/maxwellreuter/chatgpt-refusals, data/all_hand_labeled.json.
                                              1,721 gpt-3.5-turbo replies, each hand-labelled with a tone.
    gptfuzz/train.csv, evaluate.csv           Yu et al. 2023, GPTFuzzer (MIT): github.com/sherdencooper/GPTFuzz,
                                              datasets/responses_labeled/. 7,700 replies of ChatGPT, Llama-2-7B-chat and
                                              Vicuna-7B to jailbreak templates, hand-labelled jailbroken or not.
    *.jsonl                                   any other labelled replies: {"response", "declined": true|false} and
                                              optionally "prompt", "source", "split" (train|dev|heldout).

Labels, mapped to the one question `cai eval` asks (did the reply decline, in full or in part?):

    rbr       declined unless the annotators marked `fully_complies` (a partial compliance, a refusal, or a
              reply that gives none of it without saying so all count as declined).
    chatgpt   `complied` -> answered; `rejected`, `redirected`, `contradicted`, `disclaimed`, `counseling` ->
              declined (the authors' own binary mapping); `dontknow` and `incoherent` dropped, as the authors did.
    gptfuzz   label 0 (not jailbroken) -> declined, 1 (jailbroken) -> answered. SUPPLEMENTARY: its definition is
              not ours. A reply that refuses and then complies ("[GPT]: I can't. [DAN]: Sure, ...") is
              jailbroken to its authors and a partial refusal (declined) to us, so it is neither trained on
              nor counted in the headline figure; the bench reports it apart, as a stress test.

Splits, fixed before any tuning (commit "refusal data: sources, label mapping, fixed splits"):

    heldout   rbr: the authors' test.jsonl (no prompt shared with train.jsonl); chatgpt: prompts whose
              sha256 is 0 mod 4; gptfuzz: the authors' evaluate.csv (20 questions not in train.csv);
              *.jsonl: the row's "split", else sha256 of the prompt 0 mod 4.
    dev       of the rest, prompts whose sha256 is 1 mod 5: where settings are tuned.
    train     everything else.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

DEFAULT_DATA = Path(os.environ.get("CAI_REFUSAL_DATA", "/work/shared/refusal-data"))
MISSING = "see bench/refusal_data.py's docstring (or the data folder's README) for where to fetch each file, then pass --data DIR or set CAI_REFUSAL_DATA"
SPLITS = ("train", "dev", "heldout")
# Sources with another definition of declining: reported apart, never trained on.
SUPPLEMENTARY = frozenset({"gptfuzz"})
CHATGPT_ANSWERED = {"complied"}
CHATGPT_DECLINED = {"rejected", "redirected", "contradicted", "disclaimed", "counseling"}


def _bucket(key: str, mod: int) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % mod


def _split(key: str, heldout: bool | None = None) -> str:
    """heldout when HELDOUT (or, when None, by hash of KEY); otherwise dev or train by hash of KEY."""
    if heldout is None:
        heldout = _bucket(key, 4) == 0
    if heldout:
        return "heldout"
    return "dev" if _bucket(key, 5) == 1 else "train"


def _row(source: str, prompt: str, response: str, declined: bool, split: str, detail: str) -> dict:
    return {"source": source, "prompt": prompt, "response": response, "declined": declined, "split": split, "detail": detail}


def _rbr(folder: Path) -> Iterator[dict]:
    for name, heldout in (("train.jsonl", False), ("test.jsonl", True)):
        for line in (folder / name).read_text().splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            prompt = "\n".join(m["content"] for m in r["prompt"])
            p = r["propositions"]
            detail = "fully_complies" if p["fully_complies"] else "partially_complies" if p["partially_complies"] else "inability_to_comply" if p["inability_to_comply"] else "none"
            yield _row("rbr", prompt, r["completion"][0]["content"], not p["fully_complies"], _split(prompt, heldout), detail)


def _chatgpt(path: Path) -> Iterator[dict]:
    for r in json.loads(path.read_text()):
        tone = r["tone"]
        if tone not in CHATGPT_ANSWERED | CHATGPT_DECLINED:
            continue  # dontknow, incoherent: dropped, as the authors did
        yield _row("chatgpt", r["prompt"], r["response"], tone in CHATGPT_DECLINED, _split(r["prompt"]), tone)


def _gptfuzz(folder: Path) -> Iterator[dict]:
    for name, heldout in (("train.csv", False), ("evaluate.csv", True)):
        with open(folder / name, newline="") as f:
            for r in csv.DictReader(f):
                question = f"gptfuzz-question-{r['question']}"
                yield _row("gptfuzz", question, r["Response"], r["label"] == "0", _split(question, heldout), f"label {r['label']}")


def _labelled(path: Path) -> Iterator[dict]:
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        r = json.loads(line)
        if not isinstance(r.get("response"), str) or not isinstance(r.get("declined"), bool):
            raise SystemExit(f"{path}:{i}: expected a string 'response' and a true/false 'declined'")
        prompt = r.get("prompt") or r["response"]
        split = r.get("split") or _split(prompt)
        if split not in SPLITS:
            raise SystemExit(f"{path}:{i}: 'split' must be one of {', '.join(SPLITS)}, not {split!r}")
        yield _row(r.get("source") or path.stem, prompt, r["response"], r["declined"], split, "declined" if r["declined"] else "answered")


def load(data: Path) -> list[dict]:
    """Every labelled reply found under DATA, with its source, split and declined label."""
    if not data.is_dir():
        raise SystemExit(f"no refusal data at {data}: {MISSING}")
    rows: list[dict] = []
    if (data / "rbr_gold_data" / "train.jsonl").exists():
        rows += _rbr(data / "rbr_gold_data")
    if (data / "chatgpt-refusals" / "all_hand_labeled.json").exists():
        rows += _chatgpt(data / "chatgpt-refusals" / "all_hand_labeled.json")
    if (data / "gptfuzz" / "train.csv").exists():
        rows += _gptfuzz(data / "gptfuzz")
    for path in sorted(data.glob("*.jsonl")):
        rows += _labelled(path)
    if not rows:
        raise SystemExit(f"no labelled replies found in {data}: {MISSING}")
    return rows
