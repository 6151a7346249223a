"""Training: thin wrappers over trl's trainers. Modules here import torch/trl lazily, from the commands."""

import warnings

# trl warns on import whenever the installed vLLM is newer than it has tested; cai's trainers do not use vLLM
# unless asked (--config use_vllm: true), so the warning is noise on every run.
warnings.filterwarnings("ignore", message="TRL currently supports vLLM")
