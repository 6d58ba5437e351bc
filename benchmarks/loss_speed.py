"""Discriminative loss + gradient vs an ENet forward + backward pass (4 x 256 x 512, 5 lanes).

Usage: python benchmarks/loss_speed.py   (python -m enet_discrim.benchmark runs every benchmark)
"""

import json

from enet_discrim.benchmark import loss

if __name__ == "__main__":
    print(json.dumps(loss.run(), indent=2))
