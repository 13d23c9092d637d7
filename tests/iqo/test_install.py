"""qudi-iqo-modules 1.0.0 is installed next to qudi-instream, and left qudi-core intact."""

from __future__ import annotations

import base64
import hashlib
from importlib.metadata import distribution


def test_qudi_iqo_modules_1_0_0_is_installed_without_changing_qudi_core():
    iqo = distribution("qudi-iqo-modules")
    assert iqo.version == "1.0.0"
    core = distribution("qudi-core")
    shared = {str(f) for f in iqo.files} & {str(f) for f in core.files}
    # its wheel carries a copy of qudi-core's qudi/util/fit_models/gaussian.py; scripts/setup.sh
    # puts qudi-core's own file back after installing it
    assert shared, "qudi-iqo-modules no longer shares files with qudi-core: simplify setup.sh"
    changed = []
    for file in core.files:
        if str(file) not in shared or file.hash is None:
            continue
        digest = hashlib.new(file.hash.mode, file.locate().read_bytes()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != file.hash.value:
            changed.append(str(file))
    assert not changed, f"qudi-core's files overwritten by qudi-iqo-modules: {changed}"
