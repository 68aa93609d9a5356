"""Judging tuners and tuned models: strategies side by side (compare, replay), the curves and
plots they report, and the references a tuned operator or model is held against."""
