"""Test support: the pytest plugin (`plugin`) and the processes tests control."""

from onegrid_common.testing.processes import ModuleProcess, RestartableBroker, spawn_module

__all__ = ["ModuleProcess", "RestartableBroker", "spawn_module"]
