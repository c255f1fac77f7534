"""Plugins: the hook specifications, the registry (pluggy + entry points), the contracts each kind of
component keeps, the protocol table a loss names, and the conformance kit that checks them.

May import: the base modules, :mod:`nrstream.stream` (the contracts speak of chunks and data sets),
and this package. Never a built-in plugin (the registry finds them through entry points) and never
the pipeline.
"""
