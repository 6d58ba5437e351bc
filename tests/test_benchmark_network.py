"""The network benchmark and the inference-time rewrites it compares: FLOP counting, the throughput
fraction, interleaved timing, batch-norm folding, the compiled inference function (and the
predictor running it), the benchmark's table and flags."""

import itertools

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from enet_discrim import model_dir
from enet_discrim.benchmark import __main__ as benchmark_main
from enet_discrim.benchmark import network, timing
from enet_discrim.model import ENet
from enet_discrim.model.fold import fold_batch_norm
from enet_discrim.model.serving import inference_function
from enet_discrim.model_dir import InferenceSettings
from enet_discrim.predictor import Predictor, network_input

HEIGHT, WIDTH = 32, 64


@pytest.fixture(scope="module")
def enet():
    """A tiny ENet whose batch norms are far from the identity, so that a wrong fold shows."""
    keras.utils.set_random_seed(0)
    model = ENet(num_classes=3, embedding_dim=4)
    model.build((None, HEIGHT, WIDTH, 3))
    rng = np.random.default_rng(0)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, channels))
            layer.beta.assign(rng.normal(0, 0.3, channels))
            layer.moving_mean.assign(rng.normal(0, 0.3, channels))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels))
    return model


class OneConvolution(keras.Model):
    """A stand-in network with ENet's output dict and hand-countable FLOPs: one 3x3 convolution."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, images, training=None):
        return {"embeddings": self.conv(images)}


@pytest.fixture(scope="module")
def one_convolution():
    model = OneConvolution()
    model.build((None, HEIGHT, WIDTH, 3))
    return model


def _images(batch):
    return tf.constant(np.random.default_rng(1).uniform(0, 255, (batch, HEIGHT, WIDTH, 3)), tf.float32)


def test_count_flops_of_a_convolution_and_a_matmul():
    conv = keras.layers.Conv2D(5, 3, padding="same", use_bias=False)
    conv.build((1, 8, 16, 2))
    # 2 FLOPs per multiply-add: every output element sums 3 x 3 x 2 products.
    assert network.count_flops(conv, tf.TensorSpec([1, 8, 16, 2])) == 2 * 8 * 16 * 5 * 3 * 3 * 2
    spec_a, spec_b = tf.TensorSpec([3, 5]), tf.TensorSpec([5, 7])
    assert network.count_flops(tf.matmul, spec_a, spec_b) == 2 * 3 * 5 * 7


def test_throughput_and_its_fraction_of_the_reference():
    rate, fraction = network.throughput(flops=6e9, seconds=0.1, reference_flops=16e9, reference_seconds=0.08)
    assert rate == pytest.approx(60e9)
    assert fraction == pytest.approx(60e9 / 200e9)


def test_interleaved_timing_takes_turns(monkeypatch):
    calls = []
    # Each call is timed by two clock readings; "a" takes 1, 5, 3 s and "b" 10, 30, 20 s.
    durations = iter([1, 10, 5, 30, 3, 20])
    readings = itertools.chain.from_iterable((0.0, next(durations)) for _ in range(6))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(readings))
    times = timing.interleaved_seconds(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert times == {"a": [1, 5, 3], "b": [10, 30, 20]}


def test_folded_model_computes_the_same_outputs(enet):
    kernel_before = enet.encoder.stage1[0].project.kernel.numpy().copy()
    folded = fold_batch_norm(enet)
    images = _images(2)
    expected, actual = enet(images, training=False), folded(images, training=False)
    for key in ("semantic_logits", "embeddings"):
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-4, atol=1e-4)
    norms = lambda model: [layer for layer in model._flatten_layers(include_self=False)
                           if isinstance(layer, keras.layers.BatchNormalization)]
    # Every bottleneck's batch norm is gone; the initial block's stays (after a concatenation).
    assert len(norms(enet)) == 1 + 124 and [layer.name for layer in norms(folded)] == ["batch_norm"]
    np.testing.assert_array_equal(enet.encoder.stage1[0].project.kernel.numpy(), kernel_before)


def test_fold_needs_a_built_model():
    with pytest.raises(ValueError, match="built model"):
        fold_batch_norm(ENet())


def test_inference_function_takes_any_batch_at_its_size(one_convolution):
    function = inference_function(one_convolution, HEIGHT, WIDTH, jit_compile=False)
    for batch in (1, 2):
        images = _images(batch)
        np.testing.assert_allclose(function(images)["embeddings"], one_convolution(images)["embeddings"],
                                   rtol=1e-5)
    with pytest.raises((ValueError, TypeError)):
        function(tf.zeros([1, HEIGHT, 2 * WIDTH, 3]))


@pytest.mark.slow
def test_predictor_compiled_with_xla_computes_what_the_model_does(enet):
    """ENet's pooling indices and unpooling compile with XLA, at the predictor's size (~10 s)."""
    settings = InferenceSettings("cityscapes", HEIGHT, WIDTH, num_classes=3, embedding_dim=4,
                                 thing_train_ids=(1, 2))
    predictor = Predictor(enet, settings=settings, jit_compile=True)
    frame = np.random.default_rng(2).integers(0, 256, (2 * HEIGHT, 3 * WIDTH, 3), dtype=np.uint8)
    prediction = predictor.predict(frame)
    expected = enet(network_input(frame, HEIGHT, WIDTH)[None].astype(np.float32), training=False)
    np.testing.assert_allclose(prediction.embeddings, expected["embeddings"][0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(prediction.semantic_probabilities,
                               tf.nn.softmax(expected["semantic_logits"][0]), atol=1e-5)


def test_run_relates_its_figures(one_convolution):
    result = network.run(HEIGHT, WIDTH, batch_size=2, rounds=3, variants=("plain", "xla"),
                         model=one_convolution, matmul_size=64)
    # Batch 2, 4 output channels, each the sum of 3 x 3 x 3 products.
    assert result["gflop"] == pytest.approx(2 * 2 * HEIGHT * WIDTH * 4 * 3 * 3 * 3 / 1e9)
    plain = result["plain"]
    assert plain["frames_per_s"] == pytest.approx(2 / (plain["ms"] / 1000))
    assert plain["gflop_per_s"] == pytest.approx(result["gflop"] / (plain["ms"] / 1000))
    assert plain["matmul_fraction"] == pytest.approx(plain["gflop_per_s"] / result["matmul_gflop_per_s"])
    best_rate = result["gflop"] / (plain["best_ms"] / 1000)
    assert plain["best_matmul_fraction"] == pytest.approx(best_rate / result["matmul_best_gflop_per_s"])
    assert plain["best_ms"] <= plain["ms"]
    assert set(result) == {"gflop", "matmul_gflop_per_s", "matmul_best_gflop_per_s", "plain", "xla"}
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        network.run(HEIGHT, WIDTH, variants=("plain", "fast"), model=one_convolution)


def test_benchmark_refuses_a_frames_folder_without_frames(tmp_path, capsys):
    assert benchmark_main.main(["--indir", str(tmp_path / "missing")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "missing" in error and error.count("\n") == 1


def test_table_shows_fractions_and_both_loops():
    figures = {"ms": 40.0, "best_ms": 30.0, "frames_per_s": 25.0, "gflop_per_s": 72.0,
               "matmul_fraction": 0.48, "best_matmul_fraction": 0.5, "first_call_s": 9.0}
    section = {"gflop": 2.88, "matmul_gflop_per_s": 150.0, "matmul_best_gflop_per_s": 192.0,
               "plain": figures, "xla": figures}
    results = {
        "machine": {"platform": "Linux", "cpus": 2, "gpus": 0, "tensorflow": "2.21"},
        "network": {"batch_1": section, "batch_8": {**section, "gflop": 8 * 2.88}},
        "loss": {"loss_gradient_ms": 6.0, "enet_forward_backward_ms": 600.0, "loss_share": 0.01},
        "training": {"step_ms": 1000.0, "images_per_s": 8.0, "pipeline_images_per_s": 400.0,
                     "pipeline_to_step_ratio": 50.0},
        "clustering": {"ours_ms": 1.5, "full_meanshift_ms": 50.0, "speedup": 33.0, "ari": 1.0},
        "inference_256x512": {"size": "256x512", "jit_compile": True, "frames": 10, "end_to_end_ms": 70.0,
                              "clustering_and_fitting_share": 0.07,
                              "frames_per_s": {"sequential": 12.5, "pipelined": 19.25},
                              "marginal_ms": 24.0, "plain_forward_ms": 20.0, "marginal_to_forward": 1.2},
        "tflite": {"int8": {"ms": 34.56, "frames_per_s": 28.9, "megabytes": 0.9, "export_s": 20.0}},
        "peak_memory_mb": 5000.0,
    }
    table = benchmark_main.format_table(results)
    assert ("| ENet forward, batch 1, 256x512 (2.88 GFLOP a frame), XLA | 40.0 ms (25.0 fps), 72 GFLOP/s = 48 % "
            "of the matmul's; fastest round 30.0 ms = 50 % of the matmul's fastest |") in table
    assert "| float32 matmul 2048x2048, timed beside the batch-1 forward pass | 150 GFLOP/s (fastest round 192) |" in table
    assert "| ENet forward, batch 8, 256x512 (2.88 GFLOP a frame), tf.function |" in table
    assert "batch norm folded" not in table  # only the variants measured
    assert "| Frames per second over 10 frames, 256x512 | 12.5 sequential, 19.2 pipelined |" in table
    assert "| End to end per frame, 256x512 (256x512, XLA) | 70.0 ms (clustering + fitting 7.0 %) |" in table
    assert ("| Folder inference, 256x512: wall time per extra frame vs a plain tf.function forward pass at "
            "batch 1 | 24.0 ms vs 20.0 ms (1.20x) |") in table
    assert "| TFLite network, batch 1, 256x512, int8 | 34.6 ms (28.9 fps), 0.9 MB |" in table


def test_inference_speed_relates_the_folder_loop_to_the_plain_forward_pass(enet, tmp_path):
    settings = InferenceSettings("cityscapes", HEIGHT, WIDTH, num_classes=3, embedding_dim=4,
                                 thing_train_ids=(1, 2))
    model_dir.save(str(tmp_path / "model"), enet, settings)
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for index in range(8):
        cv2.imwrite(str(frames / f"city_000000_{index:06d}_leftImg8bit.png"),
                    rng.integers(0, 256, (48, 96, 3), dtype=np.uint8))
    result = benchmark_main.inference_speed(str(tmp_path / "model"), str(frames), str(tmp_path / "out"),
                                            jit_compile=False)
    assert result["frames"] == 8 and not result["jit_compile"]
    assert result["plain_forward_ms"] > 0 and result["marginal_ms"] > 0
    assert result["marginal_to_forward"] == pytest.approx(result["marginal_ms"] / result["plain_forward_ms"])
