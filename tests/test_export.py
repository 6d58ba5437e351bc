import os
import re
import shutil

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from enet_discrim import export, model_dir
from enet_discrim.cli import export as export_command
from enet_discrim.model import ENet, InitialBlock, MaxPoolingWithArgmax2D, MaxUnpooling2D
from enet_discrim.training import TrainConfig, save_model

HEIGHT, WIDTH = 32, 64
SHIPPED_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "trained_model")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("model")
    model = ENet(num_classes=2, embedding_dim=4)
    model.build((None, HEIGHT, WIDTH, 3))
    # Non-trivial slopes and batch-norm statistics, so that inference mode is really exercised.
    rng = np.random.default_rng(0)
    for weight in model.weights:
        if weight.path.endswith("alpha"):  # PReLU slopes: the int8 export rewrites PReLU
            weight.assign(rng.uniform(-0.3, 1.05, weight.shape).astype("float32"))
    for weight in model.non_trainable_weights:
        if weight.path.endswith("moving_mean"):
            weight.assign(rng.normal(0.0, 0.1, weight.shape).astype("float32"))
        elif weight.path.endswith("moving_variance"):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    save_model(model, TrainConfig(outdir=str(outdir), height=HEIGHT, width=WIDTH),
               {"num_classes": 2, "class_names": ["background", "lane"]})
    images = np.random.default_rng(1).integers(0, 256, (2, HEIGHT, WIDTH, 3), dtype=np.uint8)
    outputs = model(images.astype(np.float32), training=False)
    assert np.abs(outputs["embeddings"]).max() > 0.01  # a model that computes something
    expected = {
        "semantic_probabilities": tf.nn.softmax(outputs["semantic_logits"]).numpy(),
        "embeddings": outputs["embeddings"].numpy(),
    }
    return str(outdir), images, expected


def test_saved_model_serving_signature_matches_keras(trained, tmp_path):
    modeldir, images, expected = trained
    path = export.export(modeldir, str(tmp_path / "saved"), "saved_model")
    serving = tf.saved_model.load(path).signatures["serving_default"]
    outputs = serving(images=tf.constant(images))
    assert set(outputs) == {"semantic_probabilities", "embeddings"}
    for key, value in expected.items():
        np.testing.assert_allclose(outputs[key].numpy(), value, atol=1e-5)


def _tflite_outputs(path, images, height, width):
    """(logits, embeddings) of `model.tflite` on each image, read with the bare interpreter."""
    interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (image_input,) = interpreter.get_input_details()
    logits_output, embeddings_output = interpreter.get_output_details()
    assert image_input["dtype"] == np.uint8 and list(image_input["shape"]) == [1, height, width, 3]
    assert list(logits_output["shape"]) == [1, height, width, 2]
    assert list(embeddings_output["shape"]) == [1, height, width, 4]
    results = []
    for image in images:
        interpreter.set_tensor(image_input["index"], image[None])
        interpreter.invoke()
        results.append([interpreter.get_tensor(output["index"])[0]
                        for output in (logits_output, embeddings_output)])
    return [np.stack(values) for values in zip(*results)]


@pytest.fixture(scope="module")
def tiny_model(trained):
    return model_dir.load(trained[0])[0]


@pytest.fixture(scope="module")
def lite_folders(trained, tmp_path_factory):
    """The `trained` model as float32 and float16 TFLite model folders."""
    root = tmp_path_factory.mktemp("lite")
    export.export(trained[0], str(root / "none"), "tflite")
    assert export_command.main(["--modeldir", trained[0], "--outdir", str(root / "float16"), "--format",
                        "tflite", "--quantize", "float16"]) == 0
    return {"none": str(root / "none"), "float16": str(root / "float16")}


@pytest.fixture(scope="module")
def shipped_int8(tmp_path_factory):
    """The shipped model and its int8 TFLite folder, calibrated on 8 frames: int8 error is only
    meaningful for a trained network (a random one has no signal above its noise)."""
    folder = str(tmp_path_factory.mktemp("int8") / "lite")
    export.export(SHIPPED_MODEL, folder, "tflite", quantize="int8", calibration_frames=8)
    return model_dir.load(SHIPPED_MODEL)[0], folder


@pytest.mark.slow
def test_each_quantization_writes_model_tflite_and_the_source_config(trained, lite_folders,
                                                                      shipped_int8):
    folders = {**lite_folders, "int8": shipped_int8[1]}
    for quantize, folder in folders.items():
        assert sorted(os.listdir(folder)) == ["config.json", "model.tflite"], quantize
        source = SHIPPED_MODEL if quantize == "int8" else trained[0]
        assert model_dir.load_settings(folder) == model_dir.load_settings(source)
    sizes = {quantize: os.path.getsize(os.path.join(folder, "model.tflite"))
             for quantize, folder in lite_folders.items()}
    assert sizes["none"] > 1.6 * sizes["float16"]  # float16 weights


@pytest.mark.slow
def test_float_tflite_models_match_keras(trained, tiny_model, lite_folders):
    images = trained[1]
    keras_outputs = tiny_model(images.astype(np.float32), training=False)
    lite = {quantize: _tflite_outputs(os.path.join(folder, "model.tflite"), images, HEIGHT, WIDTH)
            for quantize, folder in lite_folders.items()}
    for value, key in zip(lite["none"], ("semantic_logits", "embeddings")):
        np.testing.assert_allclose(value, keras_outputs[key].numpy(), atol=1e-3)
    for value, key in zip(lite["float16"], ("semantic_logits", "embeddings")):
        # float16 weights move a few near-ties of the max-pooling to another position
        error = np.abs(value - keras_outputs[key].numpy())
        assert np.median(error) < 1e-3 and np.mean(error < 1e-2) > 0.9, key


@pytest.mark.slow
def test_int8_model_is_integer_inside_builtin_only_and_delegated(shipped_int8):
    interpreter = tf.lite.Interpreter(model_path=os.path.join(shipped_int8[1], "model.tflite"))
    interpreter.allocate_tensors()
    tensors = {tensor["index"]: tensor for tensor in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    names = {op["op_name"] for op in ops}
    assert not {name for name in names if name.startswith("Flex") or name == "CUSTOM"}
    assert "PRELU" not in names  # rewritten: int8 PRELU is not XNNPACK's, and slow
    # (un)pooling by masks of the maxima, not by ARG_MAX and ONE_HOT (TFLite kernels, slow)
    assert {"MAX_POOL_2D", "SUB", "DEPTH_TO_SPACE"} <= names and not {"ARG_MAX", "ONE_HOT"} & names
    assert "DELEGATE" in names  # XNNPACK took int8 ops
    float_makers = {op["op_name"] for op in ops if op["op_name"] != "DELEGATE"
                    for index in op["outputs"] if tensors[index]["dtype"] == np.float32}
    assert float_makers == {"CAST", "DEQUANTIZE"}  # the uint8 input's cast, the two outputs
    for op in ops:
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "ADD"):
            assert {tensors[i]["dtype"] for i in op["outputs"]} == {np.int8}
    quantize = next(op for op in ops if op["op_name"] == "QUANTIZE")
    # the uint8 pixels, quantized exactly: scale 1
    assert tensors[quantize["outputs"][0]]["quantization"] == (1.0, -128)


@pytest.mark.slow
def test_int8_model_is_close_to_keras(shipped_int8):
    model, folder = shipped_int8
    settings = model_dir.load_settings(folder)
    # serving-like frames of another seed than the calibration's
    frames = np.stack(list(export.calibration_images("tusimple", settings.height, settings.width,
                                                     3, seed=1)))
    expected = model(frames.astype(np.float32), training=False)
    logits, embeddings = _tflite_outputs(os.path.join(folder, "model.tflite"), frames,
                                         settings.height, settings.width)
    lane = tf.nn.softmax(expected["semantic_logits"]).numpy()[..., 1] > settings.min_confidence
    lane_int8 = tf.nn.softmax(logits).numpy()[..., 1] > settings.min_confidence
    assert lane.sum() > 1000
    assert (lane & lane_int8).sum() / (lane | lane_int8).sum() > 0.8
    # against delta_v 0.5: how far int8 moves a lane pixel's embedding
    distance = np.linalg.norm(embeddings - expected["embeddings"].numpy(), axis=-1)[lane]
    assert distance.mean() < 0.25


def test_int8_friendly_tracing_computes_the_same_function(trained, tiny_model):
    images = trained[1].astype(np.float32)
    slopes = [weight.numpy() for weight in tiny_model.weights if weight.path.endswith("alpha")]
    # both forms of the PReLU rewrite are taken: slopes up to 1, and above
    assert any(alpha.max() > 1 for alpha in slopes) and any(alpha.max() <= 1 for alpha in slopes)
    replaced = (keras.layers.PReLU, InitialBlock, MaxPoolingWithArgmax2D, MaxUnpooling2D)
    originals = [layer_class.call for layer_class in replaced]
    with export._tflite_friendly_tracing(int8=True):
        # The pooling rewrite counts float values within 2**-14 of a window's maximum as ties
        # (they are in int8), which this random network's small activations often are: it has a
        # test of its own below; here the layers' own pooling.
        rewritten = MaxPoolingWithArgmax2D.call, MaxUnpooling2D.call
        MaxPoolingWithArgmax2D.call, MaxUnpooling2D.call = originals[2:]
        try:
            traced = tf.function(lambda x: tiny_model(x, training=False)).get_concrete_function(
                tf.TensorSpec(images.shape, tf.float32))
        finally:
            MaxPoolingWithArgmax2D.call, MaxUnpooling2D.call = rewritten
    assert [layer_class.call for layer_class in replaced] == originals  # patches undone
    ops = {op.type for op in traced.graph.get_operations()}
    assert "DepthwiseConv2dNative" in ops  # the rewritten PReLU
    outputs = traced(tf.constant(images))
    np.testing.assert_allclose(tf.nn.softmax(outputs["semantic_logits"]).numpy(),
                               trained[2]["semantic_probabilities"], atol=1e-4)
    np.testing.assert_allclose(outputs["embeddings"].numpy(), trained[2]["embeddings"], atol=1e-4)


def test_int8_pooling_masks_unpool_as_the_layers_do_ties_included():
    pool, unpool = MaxPoolingWithArgmax2D(), MaxUnpooling2D()
    rng = np.random.default_rng(4)
    # 4 levels 0.01 apart (above the 2**-14 that counts as a tie): ties in most windows.
    values = rng.integers(0, 4, (2, 8, 8, 5)).astype(np.float32) / 100
    values[0, :2, :2] = 0.03  # a window of four equal values
    pooled_values = rng.normal(size=(2, 4, 4, 5)).astype(np.float32)

    def pool_and_unpool(x):
        pooled, positions = pool(x)
        return pooled, unpool((pooled_values, positions))

    expected_pooled, expected = pool_and_unpool(values)
    with export._tflite_friendly_tracing(int8=True):
        pooled, unpooled = tf.function(pool_and_unpool)(values)
    np.testing.assert_array_equal(pooled.numpy(), expected_pooled.numpy())
    np.testing.assert_array_equal(unpooled.numpy(), expected.numpy())
    assert (unpooled.numpy()[0, :2, :2] != 0).sum(axis=(0, 1)).tolist() == [1] * 5


def test_export_pooling_finds_the_argmax_of_the_layer_ties_included():
    pool = MaxPoolingWithArgmax2D()
    rng = np.random.default_rng(3)
    values = rng.integers(0, 3, (2, 8, 8, 5)).astype(np.float32)  # 3 levels: ties in most windows
    values[0, :2, :2] = 1.0  # a window of four equal values
    expected_pooled, expected_argmax = pool(values)
    original = MaxPoolingWithArgmax2D.call
    with export._tflite_friendly_tracing(int8=False):
        pooled, argmax = tf.function(pool)(values)
    np.testing.assert_array_equal(argmax.numpy(), expected_argmax.numpy())
    np.testing.assert_array_equal(pooled.numpy(), expected_pooled.numpy())
    assert (argmax.numpy()[0, 0, 0] == 0).all()  # ties go to the first position
    assert MaxPoolingWithArgmax2D.call is original  # patch undone


def test_int8_max_unpooling_puts_each_value_where_its_maximum_was():
    # The masks must come out exactly 0 and 1 in int8, and ties go to the first maximum.
    pool, unpool = MaxPoolingWithArgmax2D(), MaxUnpooling2D()

    def pool_and_unpool(x):
        pooled, argmax = pool(x)
        return unpool((pooled, argmax))

    rng = np.random.default_rng(5)
    samples = rng.normal(size=(9, 1, 8, 8, 4)).astype(np.float32)
    samples[0, 0, :2, :2] = 1.0  # one window of four equal values in each channel
    samples[0, 0, 2:4, :2] = np.array([[-1.0, 0.5], [0.5, 0.25]])[..., None]  # two equal maxima
    with export._tflite_friendly_tracing(int8=True):
        function = tf.function(pool_and_unpool).get_concrete_function(
            tf.TensorSpec([1, 8, 8, 4], tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: ([sample] for sample in samples[1:])
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], samples[0])
    interpreter.invoke()
    result = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
    # Built independently: each 2x2 window's first maximum (row-major) in its place, zeros elsewhere.
    windows = samples[0, 0].reshape(4, 2, 4, 2, 4).transpose(0, 2, 4, 1, 3).reshape(4, 4, 4, 4)
    first = np.arange(4) == np.argmax(windows, axis=-1)[..., None]
    expected = np.where(first, windows, 0.0)
    expected = expected.reshape(4, 4, 4, 2, 2).transpose(0, 3, 1, 4, 2).reshape(8, 8, 4)
    step = np.abs(samples).max() / 127  # about one int8 step
    assert np.mean(np.abs(result[expected == 0])) < 0.5 * step
    np.testing.assert_allclose(result[expected != 0], expected[expected != 0], atol=2 * step)
    assert (result[:2, :2] > 0).sum(axis=(0, 1)).tolist() == [1] * 4 and (result[0, 0] > 0).all()
    assert (result[2:4, :2] != 0).sum(axis=(0, 1)).tolist() == [1] * 4 and (result[2, 1] != 0).all()


@pytest.mark.slow
def test_predictor_on_a_tflite_folder_finds_the_keras_folders_instances(trained, lite_folders):
    from enet_discrim.predictor import Predictor
    from enet_discrim.tflite_network import TFLiteNetwork

    found = {}
    for name, folder in (("keras", trained[0]), ("tflite", lite_folders["none"])):
        # every pixel of the lane class clustered: the random model then has instances
        predictor = Predictor(folder, min_confidence=0.0, threads=1)
        found[name] = [predictor.predict(cv2.resize(image, (128, 64))) for image in trained[1]]
    assert isinstance(predictor.model, TFLiteNetwork)
    assert all(prediction.instances.max() >= 1 for prediction in found["keras"])
    for keras_prediction, lite_prediction in zip(found["keras"], found["tflite"]):
        np.testing.assert_array_equal(lite_prediction.instances, keras_prediction.instances)
        assert lite_prediction.lanes == keras_prediction.lanes


def test_export_errors_are_clear(tmp_path, capsys):
    assert export_command.main(["--modeldir", str(tmp_path), "--outdir", str(tmp_path / "x")]) == 2
    assert "missing model.keras and config.json" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown format 'onnx'"):
        export.export(str(tmp_path), str(tmp_path / "x"), "onnx")
    with pytest.raises(SystemExit) as exit_info:
        export_command.main(["--modeldir", str(tmp_path), "--outdir", str(tmp_path / "x"), "--format",
                     "tflite", "--quantize", "int4"])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"error: python -m enet_discrim.export: argument --quantize: invalid "
                        r"choice: 'int4' \(choose from '?none'?, '?float16'?, '?int8'?\)", line)
    with pytest.raises(ValueError, match="unknown quantize 'int4': choose one of none, float16, int8"):
        export.export(str(tmp_path), str(tmp_path / "x"), "tflite", quantize="int4")
    with pytest.raises(ValueError, match="quantize 'int8' needs the tflite format"):
        export.export(str(tmp_path), str(tmp_path / "x"), "saved_model", quantize="int8")
    with pytest.raises(ValueError, match="calibration_frames must be a positive integer, got 0"):
        export.export(str(tmp_path), str(tmp_path / "x"), "tflite", "int8", calibration_frames=0)
    assert not os.path.exists(tmp_path / "x")


def test_a_tflite_folder_is_a_model_folder_but_not_an_export_source(trained, tmp_path, capsys):
    from enet_discrim.predictor import Predictor

    folder = tmp_path / "lite"
    folder.mkdir()
    shutil.copy(os.path.join(trained[0], "config.json"), folder)
    (folder / "model.tflite").write_bytes(b"not a flatbuffer")
    model_dir.check_folder(str(folder))  # config.json and a network
    with pytest.raises(ValueError, match=r"model.tflite: not a loadable TFLite model"):
        Predictor(str(folder))
    assert export_command.main(["--modeldir", str(folder), "--outdir", str(tmp_path / "x"), "--format",
                        "tflite"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: Model folder {str(folder)!r} holds model.tflite but no model.keras (a Keras model "
        "is needed here)"]


class _Killed(BaseException):
    """Stands for a SIGKILL: nothing after it runs in the killed call."""


def _load_outputs(path, images):
    serving = tf.saved_model.load(path).signatures["serving_default"]
    return {key: value.numpy() for key, value in serving(images=tf.constant(images)).items()}


@pytest.mark.slow
def test_a_killed_re_export_leaves_the_earlier_saved_model_loadable(trained, tmp_path, monkeypatch):
    # Issue 15 item 1: killed while rewriting variables.data, the earlier export no longer loaded.
    modeldir, images, expected = trained
    outdir = tmp_path / "exported"
    export.export(modeldir, str(outdir), "saved_model")
    (outdir / "model.tflite").write_bytes(b"an earlier TFLite export")
    model = ENet(num_classes=2, embedding_dim=4)  # other random weights
    model.build((None, HEIGHT, WIDTH, 3))
    other_modeldir = str(tmp_path / "model2")
    save_model(model, TrainConfig(outdir=other_modeldir, height=HEIGHT, width=WIDTH),
               {"num_classes": 2, "class_names": ["background", "lane"]})
    outputs = model(images.astype(np.float32), training=False)
    other_expected = {"semantic_probabilities": tf.nn.softmax(outputs["semantic_logits"]).numpy(),
                      "embeddings": outputs["embeddings"].numpy()}
    assert not np.allclose(other_expected["embeddings"], expected["embeddings"], atol=1e-3)

    real_save = tf.saved_model.save

    def killed_while_writing_variables(module, export_dir, signatures=None):
        scratch = tmp_path / "scratch"
        real_save(module, str(scratch), signatures=signatures)
        os.makedirs(os.path.join(export_dir, "variables"), exist_ok=True)
        for name in os.listdir(scratch / "variables"):
            if name.startswith("variables.data"):  # the new data, not yet its index
                shutil.copy(scratch / "variables" / name, os.path.join(export_dir, "variables"))
        raise _Killed()

    monkeypatch.setattr(tf.saved_model, "save", killed_while_writing_variables)
    with pytest.raises(_Killed):
        export.export(other_modeldir, str(outdir), "saved_model")
    monkeypatch.setattr(tf.saved_model, "save", real_save)
    for key, value in _load_outputs(str(outdir), images).items():
        np.testing.assert_allclose(value, expected[key], atol=1e-5)

    # A re-export that finishes replaces the SavedModel and keeps the other files of the folder.
    export.export(other_modeldir, str(outdir), "saved_model")
    for key, value in _load_outputs(str(outdir), images).items():
        np.testing.assert_allclose(value, other_expected[key], atol=1e-5)
    assert (outdir / "model.tflite").read_bytes() == b"an earlier TFLite export"
    assert sorted(os.listdir(tmp_path)) == ["exported", "model2", "scratch"]  # no leftovers
