"""Out of the lab: the streaming front end, long recordings with ground truth, the detector,
``listen`` and ``export``.

May import: the base modules, :mod:`nrstream.stream`, :mod:`nrstream.plugin`, :mod:`nrstream.data`,
:mod:`nrstream.artifacts` and this package. Not :mod:`nrstream.lab`: a trained agent reaches it as an
artifact (:class:`~nrstream.artifacts.trained_agent.TrainedAgent`).
"""
