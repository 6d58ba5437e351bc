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


def interleaved_seconds(functions, rounds, warmup=1):
    """Wall times of each of `functions` (name -> callable), called in turn, one call of each per
    round, over `rounds` rounds after `warmup` untimed rounds.

    Taking turns spreads other load on the machine over all the functions alike. Each function
    must block until its work is done.

    Returns:
        dict: name -> list of `rounds` seconds, in call order.
    """
    for _ in range(warmup):
        for function in functions.values():
            function()
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return times
