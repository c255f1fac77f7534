"""The conformance kit for plugin authors (public name; implemented in :mod:`nrstream.plugin.conformance`).

Like Gymnasium's ``check_env``: the checks the built-in plugins pass, importable, so a
third-party component is checked the same way::

    from nrstream.testing import check_architecture
    check_architecture(MyNet, options={"hidden_size": 8})
"""

from nrstream.plugin.conformance import (
    ConformanceError,
    check_architecture,
    check_data_source,
    check_loss,
    check_metric,
    known_protocols,
    make_chunk,
)

__all__ = [
    "ConformanceError",
    "make_chunk",
    "check_architecture",
    "check_loss",
    "check_metric",
    "check_data_source",
    "known_protocols",
]
