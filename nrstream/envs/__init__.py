"""Gymnasium environments over nrstream streams.

``StreamEnv`` (:mod:`nrstream.envs.single`: one lane, numpy) and ``StreamVectorEnv``
(:mod:`nrstream.envs.vector`: ``B`` lanes, torch tensors on one device), registered as
``nrstream/<Name>-v<N>`` by :mod:`nrstream.envs.registration`. Importing this package
imports neither torch nor gymnasium.

May import: the base modules, :mod:`nrstream.stream`, :mod:`nrstream.plugin`, :mod:`nrstream.data`
and this package.
"""

from nrstream.envs.registration import ENVS, register_envs

__all__ = ["ENVS", "register_envs"]
