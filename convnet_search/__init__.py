"""convnet-search: semantic image search with pretrained CNNs.

The Python API (convnet_search/api.py, docs/python.md) is re-exported here lazily: modules of the
package import `__version__` from this root, so the root imports nothing of the package at import
time, and `import convnet_search` stays cheap (no TensorFlow, no HDF5)."""
import importlib

__version__ = "0.1.0"

# The public API: name -> the module that defines it (loaded on first attribute access).
_API = ("open_run", "embed_folder", "export", "Run", "RunError", "Configuration", "Hit", "Scores",
        "DatasetInfo", "Embeddings", "LABEL_FIELD", "EXPORT_FORMATS")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module("convnet_search.api"), name)
    raise AttributeError(f"module 'convnet_search' has no attribute {name!r}")
