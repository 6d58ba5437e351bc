"""Timing helpers shared by the benchmarks."""

import time


def median_seconds(function, repeats, warmup=1):
    """Median wall time of `function()` over `repeats` calls after `warmup` untimed calls.

    `function` must block until its work is done (e.g. return `.numpy()` of a result).
    """
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
