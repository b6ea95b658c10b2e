# Copyright (c) mmsb contributors. All rights reserved.
"""The machine a measurement ran on, as benchmark.py and evidence.py
store it."""


def cpu_name(default=None):
    """The CPU's model name from ``/proc/cpuinfo``, or ``default`` where
    there is none (hosts other than Linux)."""
    try:
        with open('/proc/cpuinfo') as f:
            return next((line.split(':', 1)[1].strip() for line in f
                         if line.startswith('model name')), default)
    except OSError:
        return default
