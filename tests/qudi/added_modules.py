"""Modules a test adds to the running qudi from a ``hardware:`` section of its own."""

from __future__ import annotations

import json

from qudi.core.config import Configuration

_ADDED: dict[str, str] = {}  # name: its configuration, as first added in this test session


def add_modules(qudi, tmp_path, hardware_yaml: str, logic_yaml: str = "") -> list[str]:
    """Register the modules of a ``hardware:`` (and ``logic:``) section with the running qudi
    (as qudi loads a config: the same validation, the same module manager)."""
    path = tmp_path / "kinds.cfg"
    path.write_text("hardware:\n" + hardware_yaml + ("logic:\n" + logic_yaml if logic_yaml else ""))
    configuration = Configuration()
    configuration.load(str(path), set_default=False)
    names = []
    for base in ("hardware", "logic"):
        for name, module_config in configuration[base].items():
            config = json.dumps(module_config, sort_keys=True, default=str)
            if _ADDED.setdefault(name, config) != config:  # else a test would get another's
                raise ValueError(
                    f"module {name!r} was added by another test with another configuration: "
                    "give this one a name of its own"
                )
            if name not in qudi.module_manager:
                qudi.module_manager.add_module(name=name, base=base, configuration=module_config)
            names.append(name)
    return names
