"""What the fuzz tests of the modules share: hostile values, and how often to draw them.

Used by tests/ni/test_ni_fuzz.py and tests/qudi/test_{dummy,buffer,logic}_fuzz.py.
"""

from __future__ import annotations

from hypothesis import strategies as st

#: any value of the wrong kind or range a config file, script or remote peer could pass
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.one_of(st.text(max_size=5), st.integers(), st.none()), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
#: publish_address values: valid ones and ones activation must refuse
ADDRESSES = ["tcp://127.0.0.1:*", "tcp://*:0", "tcp://127.0.0.1:70000", "tcp://1.2.3.999:*"]


def mostly(valid: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` four times in five, otherwise a hostile value."""
    return st.sampled_from([True, True, True, True, False]).flatmap(
        lambda ok: valid if ok else HOSTILE
    )


def waits_briefly_if_valid(timeout: object) -> bool:
    """A read's timeout for the fuzz: any hostile value except those a read takes as a long
    wait (None, or a finite number above a second): such a read waits as long as it was told
    to, and in a fuzz test the samples may never come (the NI fake's clock moves only when the
    test says)."""
    if timeout is None:
        return False
    number = isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
    return not (number and 1 < timeout < float("inf"))
