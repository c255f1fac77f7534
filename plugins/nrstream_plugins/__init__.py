"""nrstream's built-in components, shipped as ordinary plugins.

Each module named in the ``nrstream`` entry-point group of ``pyproject.toml`` is a
plugin: it imports ``nrstream.hookimpl`` and implements one or more hooks of
:mod:`nrstream.plugin.hookspecs`, exactly as a third-party plugin would.
"""
