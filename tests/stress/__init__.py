"""Soak and chaos test of the whole chain under load and faults (see soak_qudi.py)."""

BOUNDED_SECONDS = 100.0  # chaos time of the default run (plus ~30 s of start, warm-up, checks)
PHASE_SECONDS = 25.0  # a --long run repeats the phases


def hard_limit(seconds: float) -> float:
    """Wall time after which a soak of ``seconds`` of chaos counts as hung (start, warm-up and
    each phase's checks come on top of the chaos time)."""
    return 1.2 * seconds + 300.0
