"""Speed and memory measurements; `python -m enet_discrim.benchmark` runs them all.

One module per part of the product, each with a `run(...)` function returning a dict of figures.
"""
