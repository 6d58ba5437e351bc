"""Trains ENet with the discriminative loss: `python training.py --srcdir data --var 1.0 --dist 1.0`.

The same as `enet-discrim train`; the flags and the code are in `enet_discrim.cli.train`.
"""

if __name__ == "__main__":
    from enet_discrim.cli import train

    train.run()
