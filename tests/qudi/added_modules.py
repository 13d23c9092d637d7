"""Modules a test adds to the running qudi from a ``hardware:`` section of its own."""

from __future__ import annotations

from qudi.core.config import Configuration


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
            if name not in qudi.module_manager:
                qudi.module_manager.add_module(name=name, base=base, configuration=module_config)
            names.append(name)
    return names
