"""Whole models: import (``importer``), the built-in networks (``networks``), tasks and the
budget over them (``scheduler``), compile and export (``build``), and the tuning loop (``tuner``)."""
