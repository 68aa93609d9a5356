"""Chameleon: adaptive code optimization for DNN operators on Apache TVM.

``tune_workload`` tunes one operator, ``tune_model`` a whole model (``load_artifact``
loads what it exports, on the thread count it was tuned for), ``compare`` runs
strategies side by side; heavy libraries (tvm, torch, xgboost) load only
when a tuning run needs them, so importing the package is fast.
"""

from .api import UsageError, tune_workload
from .evaluation.compare import compare
from .model.build import load_artifact
from .model.tuner import tune_model

__version__ = "0.1.0"
__all__ = ["UsageError", "compare", "load_artifact", "tune_model", "tune_workload", "__version__"]
