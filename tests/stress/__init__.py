"""Soak and chaos test of the whole chain under load and faults (see soak_qudi.py)."""

BOUNDED_SECONDS = 60.0  # chaos time of the default run (plus ~25 s of start, warm-up, checks)
PHASE_SECONDS = 25.0  # a --long run repeats the phases; a short one shortens them


def hard_limit(seconds: float) -> float:
    """Wall time after which a soak of ``seconds`` of chaos counts as hung (start, warm-up and
    each phase's checks come on top of the chaos time)."""
    return 1.2 * seconds + 300.0


def phase_count(seconds: float, kinds: int) -> int:
    """Phases of a soak of ``seconds`` of chaos: every kind at least once (shorter phases for a
    short run), else phases of about :data:`PHASE_SECONDS`."""
    return max(kinds, round(seconds / PHASE_SECONDS))
