"""Clustering speed: `cluster_embeddings` against scikit-learn MeanShift on every foreground pixel.

Synthetic case: a frame with lanes drawn as thin diagonal bands that converge towards the top like
a road in perspective; each lane's embeddings are a fixed centre (centres 3.0 or more apart, the
`2 * delta_d` the loss asks for) plus gaussian noise.

    python -m enet_discrim.benchmark.clustering [--height 256 --width 512 ...]
"""

import argparse
import json
import time

import numpy as np
from sklearn.cluster import MeanShift
from sklearn.metrics import adjusted_rand_score

from enet_discrim.clustering import DEFAULT_BANDWIDTH, cluster_embeddings


def synthetic_lane_embeddings(height=256, width=512, n_lanes=5, dims=4, noise=0.2,
                              foreground_share=0.1, seed=0):
    """A frame of lanes with ideal embeddings plus noise.

    Lane i is a band around a line from the bottom edge (evenly spread) towards the top centre,
    its horizontal width chosen so that the lanes cover about `foreground_share` of the frame.
    Lane centres in embedding space are 3 * (unit vector i) for i < dims and 0 for one more lane,
    so any two are at least 3.0 apart.

    Args:
        height, width: frame size in pixels.
        n_lanes: number of lanes, at most dims + 1.
        dims: embedding dimension.
        noise: standard deviation of the gaussian noise added to every embedding.
        foreground_share: fraction of pixels on lanes.
        seed: noise seed.

    Returns:
        (embeddings float32 [H, W, dims], foreground bool [H, W], truth int32 [H, W] with
        0 background and 1..n_lanes lanes).
    """
    if n_lanes > dims + 1:
        raise ValueError(f"n_lanes={n_lanes} needs dims >= {n_lanes - 1}, got dims={dims}")
    rng = np.random.default_rng(seed)
    centres = np.zeros((n_lanes, dims))
    for lane in range(min(n_lanes, dims)):
        centres[lane, lane] = 3.0
    band_width = foreground_share * width / n_lanes
    rows = np.arange(height, dtype=np.float64)[:, None]
    cols = np.arange(width, dtype=np.float64)[None, :]
    truth = np.zeros((height, width), dtype=np.int32)
    for lane in range(n_lanes):
        x_bottom = (lane + 0.5) * width / n_lanes
        # Lanes converge to 30% of their bottom spread at the top row.
        x_top = width / 2 + 0.3 * (x_bottom - width / 2)
        centre_x = x_top + (x_bottom - x_top) * rows / max(height - 1, 1)
        truth[np.abs(cols - centre_x) < band_width / 2] = lane + 1
    foreground = truth > 0
    embeddings = rng.normal(scale=noise, size=(height, width, dims))
    embeddings[foreground] += centres[truth[foreground] - 1]
    embeddings[~foreground] += 10.0  # far from every lane; never clustered anyway
    return embeddings.astype(np.float32), foreground, truth


def _median_ms(function, repeats):
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times)), result


def run(height=256, width=512, n_lanes=5, dims=4, noise=0.2, bandwidth=DEFAULT_BANDWIDTH,
        repeats=3, seed=0):
    """Time `cluster_embeddings` and full-foreground MeanShift on the synthetic case.

    Args:
        height, width, n_lanes, dims, noise: the synthetic frame (`synthetic_lane_embeddings`).
        bandwidth: mean-shift bandwidth for both.
        repeats: timed runs of each (median reported), after one untimed warm-up of ours.
        seed: seed of the frame and of our sample.

    Returns:
        dict: ours_ms, full_meanshift_ms, speedup (full / ours), ari (ours vs full MeanShift on
        the foreground pixels), ari_truth (ours vs the drawn lanes), foreground_pixels, instances.
    """
    embeddings, foreground, truth = synthetic_lane_embeddings(height, width, n_lanes, dims,
                                                              noise, seed=seed)
    points = embeddings[foreground]

    def ours():
        return cluster_embeddings(embeddings, foreground, bandwidth=bandwidth, seed=seed)

    def full():
        return MeanShift(bandwidth=bandwidth, bin_seeding=True).fit(points).labels_

    ours()
    ours_ms, instance_map = _median_ms(ours, repeats)
    full_ms, full_labels = _median_ms(full, repeats)
    return {
        "ours_ms": ours_ms,
        "full_meanshift_ms": full_ms,
        "speedup": full_ms / ours_ms,
        "ari": float(adjusted_rand_score(full_labels, instance_map[foreground])),
        "ari_truth": float(adjusted_rand_score(truth[foreground], instance_map[foreground])),
        "foreground_pixels": int(foreground.sum()),
        "instances": int(instance_map.max()),
    }


def main(argv=None):
    """Command line: run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--lanes", type=int, default=5)
    parser.add_argument("--dims", type=int, default=4)
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--bandwidth", type=float, default=DEFAULT_BANDWIDTH)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = run(args.height, args.width, args.lanes, args.dims, args.noise, args.bandwidth,
                 args.repeats, args.seed)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
