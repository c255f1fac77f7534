"""Registers nrstream's Gymnasium ids right after ``gymnasium`` is first imported.

Gymnasium 1.x no longer loads the ``gymnasium.envs`` entry points, yet
``gymnasium.make("nrstream/Toy-v1")`` should work without ``import nrstream``. The
``nrstream-gymnasium.pth`` file installed beside this module imports it at interpreter
start-up; ``import nrstream`` installs it too. It adds one ``sys.meta_path`` finder that
answers only for ``gymnasium``: it asks the finders behind it for gymnasium's spec and
wraps that spec's ``exec_module``, so that the ids are registered (data only: entry-point
strings, no torch) once gymnasium's own code has run; then it removes itself.

Why it is written this way:

- Only ``sys`` is imported (already loaded at start-up). Subclassing
  ``importlib.abc.MetaPathFinder`` imported ``importlib.abc``, which pulls in
  ``importlib.resources`` and ``typing`` and doubled bare interpreter start-up
  (``benchmarks/startup.py`` measures it); a finder is any object with ``find_spec``.
- The finder stays installed until gymnasium is really executed, so a bare
  ``importlib.util.find_spec("gymnasium")`` (TorchRL does one on import) does not use it up.
- The ids are registered by ``nrstream.envs.registration``, which imports gymnasium only
  inside ``register_envs()``: importing it first, in any order, cannot be circular.
"""

import sys


def _register() -> None:
    try:
        from nrstream.envs.registration import register_envs

        register_envs()
    except Exception as exc:  # never break `import gymnasium`
        import warnings

        warnings.warn(
            f"nrstream could not register its Gymnasium ids ({exc}); call nrstream.envs.register_envs()",
            RuntimeWarning,
            stacklevel=2,
        )


class RegisterAfterGymnasium:
    """A ``sys.meta_path`` finder for ``gymnasium`` that finds nothing itself."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "gymnasium":
            return None
        finders = list(sys.meta_path)
        behind = finders[finders.index(self) + 1 :] if self in finders else finders
        for finder in behind:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec

        def exec_module_then_register(module):
            exec_module(module)
            uninstall()
            _register()

        # an attribute of this spec's own loader instance: the module keeps its real loader type
        loader.exec_module = exec_module_then_register
        return spec


def installed() -> bool:
    return any(isinstance(finder, RegisterAfterGymnasium) for finder in sys.meta_path)


def install() -> None:
    """Add the finder (once) unless gymnasium is already imported."""
    if "gymnasium" not in sys.modules and not installed():
        sys.meta_path.insert(0, RegisterAfterGymnasium())


def uninstall() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, RegisterAfterGymnasium)]


install()
