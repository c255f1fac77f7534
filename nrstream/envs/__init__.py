"""Gymnasium environments over nrstream streams (see :mod:`nrstream.envs.registration`)."""
