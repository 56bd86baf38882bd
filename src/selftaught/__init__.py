"""Self-taught LLM judges as a reproducible DVC pipeline. The Python API: `from selftaught import Judge`
(api.py)."""

__version__ = "0.1.0"
__all__ = ["Judge"]


def __getattr__(name):
    # Loaded on first use (PEP 562): the pipeline's stages import this package and never the API, so the API
    # and what it imports (models, DVC) are neither loaded by them nor among their dependencies.
    if name == "Judge":
        import importlib

        return importlib.import_module(f"{__name__}.api").Judge
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
