"""What a run leaves on disk, and how it is read back: results, checkpoints, run folders, trained agents.

May import: the base modules (``agent`` included), :mod:`nrstream.stream`, :mod:`nrstream.plugin`,
:mod:`nrstream.data` and this package. The experiment writes through it; listen and export read
through it (:class:`~nrstream.artifacts.trained_agent.TrainedAgent`), never through the experiment.
"""
