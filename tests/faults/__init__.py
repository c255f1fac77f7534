"""Fault-injection cases (issue 11); a package so that ``faults/test_config.py`` and ``test_config.py`` can coexist."""
