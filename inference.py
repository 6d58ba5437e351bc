"""Runs a trained model on frames or a video: `python inference.py --modeldir trained_model`.

The same as `enet-discrim infer`; the flags and the code are in `enet_discrim.cli.infer`.
"""

if __name__ == "__main__":
    from enet_discrim.cli import infer

    infer.run()
