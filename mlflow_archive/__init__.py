"""Move an MLflow tracking server, or any part of it, into one versioned archive file and back.

The public API is imported lazily: ``import mlflow`` loads this package through
our entry point, and must not pay for pyarrow or zstandard.
"""

__version__ = "0.5.0"

_PUBLIC = {
    "export_archive": "mlflow_archive.exporting",
    "import_archive": "mlflow_archive.importing",
    "log_demo_runs": "mlflow_archive.demo",
    "restore_archive": "mlflow_archive.restoring",
    "inspect_archive": "mlflow_archive.inspection",
    "verify_archive": "mlflow_archive.inspection",
    "ArchiveError": "mlflow_archive.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'mlflow_archive' has no attribute {name!r}")
