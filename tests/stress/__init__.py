"""Soak and chaos test of the whole chain under load and faults (see soak_qudi.py)."""

BOUNDED_SECONDS = 100.0  # chaos time of the default run (plus ~30 s of start, warm-up, checks)
PHASE_SECONDS = 25.0  # a --long run repeats the phases
HARD_LIMIT_MARGIN_S = 300.0  # beyond the chaos time, before a run counts as hung
