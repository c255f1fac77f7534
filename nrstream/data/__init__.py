"""Data shared by the data sources: the audio feature front end, the on-disk feature cache, data
search paths and checksummed downloads, and the glue from a source name to a stream.

May import: the base modules, :mod:`nrstream.stream`, :mod:`nrstream.plugin` and this package.
Core code never knows a source's folder layout: a source declares what it can do
(:class:`nrstream.plugin.contracts.DataSource`).
"""
