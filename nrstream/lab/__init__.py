"""The lab: configs, training, evaluation, scoring, experiments, executors, reports, aggregates.

May import: the base modules, :mod:`nrstream.stream`, :mod:`nrstream.plugin`, :mod:`nrstream.data`,
:mod:`nrstream.artifacts` and this package. Not :mod:`nrstream.deploy`, :mod:`nrstream.envs` or
:mod:`nrstream.commands`. Inside: the engine never imports the evaluation, the executors never import
the experiment (the experiment hands them jobs).
"""
