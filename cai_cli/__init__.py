"""cai: Constitutional AI, stage by stage over JSONL."""

from functools import lru_cache


@lru_cache(maxsize=1)
def version() -> str:
    """The installed package's version (pyproject.toml's), as `cai --version` prints it and every row's meta records it."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("cai-cli")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"
