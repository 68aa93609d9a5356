"""Evaluating tuners and tuned models: references to hold them against, latency curves."""
