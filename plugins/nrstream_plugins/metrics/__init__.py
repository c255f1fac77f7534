"""Built-in streaming metrics, river style: ``update(chunk, logits, aux=None)``, ``compute()``, ``reset()``.

``accuracy``, ``accuracy_by_position``, ``rolling_accuracy``, ``noise_entropy`` and
``state_norm`` (needs hidden states); the continual-learning ones, ``prequential_accuracy`` and
``accuracy_matrix`` (:mod:`nrstream_plugins.metrics.continual`). :class:`Rolling` is the generic window behind
``rolling_accuracy``.
"""

from __future__ import annotations

from nrstream import hookimpl
from nrstream_plugins.metrics._accuracy import Accuracy, AccuracyByPosition, RollingAccuracy, wilson_interval
from nrstream_plugins.metrics._diagnostics import NoiseEntropy, StateNorm
from nrstream_plugins.metrics.continual import AccuracyMatrix, PrequentialAccuracy, continual_scores
from nrstream_plugins.metrics.rolling import Rolling

__all__ = [
    "Accuracy",
    "AccuracyByPosition",
    "RollingAccuracy",
    "NoiseEntropy",
    "StateNorm",
    "Rolling",
    "PrequentialAccuracy",
    "AccuracyMatrix",
    "continual_scores",
    "wilson_interval",
]


@hookimpl
def nrstream_register_metrics(register):
    register("accuracy", Accuracy)
    register("accuracy_by_position", AccuracyByPosition)
    register("rolling_accuracy", RollingAccuracy)
    register("noise_entropy", NoiseEntropy)
    register("state_norm", StateNorm)
    register("prequential_accuracy", PrequentialAccuracy)
    register("accuracy_matrix", AccuracyMatrix)
