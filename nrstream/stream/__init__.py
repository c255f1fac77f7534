"""The endless stream: sample banks, noise, acoustic scenes, counter-based random numbers, settings.

Data flow: a data source's :class:`~nrstream.stream.bank.Dataset` → gap noise
(:mod:`~nrstream.stream.noise`) or a scene (:mod:`~nrstream.stream.scene`) →
:class:`~nrstream.stream.stream.Stream` → :class:`~nrstream.stream.stream.Chunk`;
:class:`~nrstream.stream.settings.StreamSettings` holds every parameter and its default.

May import: the base modules (``nrstream.errors``, ``log``, ``atomic``, ``stats``, ``seeds``) and
this package. Nothing else of nrstream: everything else builds on the stream.
"""
