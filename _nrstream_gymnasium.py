"""Registers nrstream's Gymnasium ids the moment ``gymnasium`` is imported.

Gymnasium 1.x no longer loads the ``gymnasium.envs`` entry points, yet
``gymnasium.make("nrstream/Toy-v0")`` should work without ``import nrstream``. The
``nrstream-gymnasium.pth`` file installed beside this module imports it at interpreter
start; it only adds a meta-path finder (no torch, no gymnasium) that wraps gymnasium's
loader once and then removes itself. Registration itself is data only: entry-point
strings that Gymnasium imports lazily on ``make``.
"""

import importlib.abc
import importlib.util
import sys
import warnings


class _RegisterAfterGymnasium(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            try:
                from nrstream.envs.registration import register_envs

                register_envs()
            except Exception as exc:  # never break `import gymnasium`
                warnings.warn(f"nrstream could not register its Gymnasium envs: {exc}", stacklevel=2)

        spec.loader.exec_module = exec_then_register
        return spec


if "gymnasium" not in sys.modules and not any(isinstance(f, _RegisterAfterGymnasium) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterGymnasium())
