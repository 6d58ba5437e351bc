"""The network of a TFLite model folder, called the way the predictor calls the Keras model.

`python -m enet_discrim.export --format tflite` writes `model.tflite` (float32, float16 weights, or
full-integer int8): one input, uint8 RGB images [1, H, W, 3] in [0, 255], and two float32 outputs
in this order, the Keras model's own: `semantic_logits` [1, H, W, C] and `embeddings`
[1, H, W, D] (a converted model keeps no output names, so the order is the contract).

`TFLiteNetwork(path)(images)` returns `{"semantic_logits", "embeddings"}` like `ENet(images)`, so
`predictor.Predictor` runs the same clustering and lane fitting on either. The interpreter applies
TFLite's default XNNPACK delegate, for float and for int8 models alike.
"""

import warnings

import numpy as np
import tensorflow as tf

#: The output order of `model.tflite`.
OUTPUT_NAMES = ("semantic_logits", "embeddings")


class TFLiteNetwork:
    """Runs `model.tflite` on batches of images, one frame at a time (the model has batch 1).

    Args:
        path: str, the `model.tflite` file.
        threads: int or None (default). Interpreter threads, XNNPACK's included; None lets TFLite
            choose.

    Attributes:
        height, width: the input size.
        num_classes, embedding_dim: C and D, the channels of the two outputs.

    Raises:
        ValueError: naming the file, when it is not a model of this layout.
    """

    def __init__(self, path, threads=None):
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        self.path = path
        self.threads = threads
        try:
            with warnings.catch_warnings():  # tf.lite.Interpreter warns that LiteRT replaces it
                warnings.simplefilter("ignore")
                self.interpreter = tf.lite.Interpreter(model_path=path, num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"{path}: not a loadable TFLite model ({message})") from None
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != len(OUTPUT_NAMES):
            raise ValueError(f"{path}: expected 1 input and {len(OUTPUT_NAMES)} outputs, found "
                             f"{len(inputs)} and {len(outputs)} (export it again)")
        (self._input,) = inputs
        shape = list(self._input["shape"])
        if self._input["dtype"] != np.uint8 or len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ValueError(f"{path}: the input must be uint8 [1, H, W, 3], found "
                             f"{np.dtype(self._input['dtype']).name} {shape}")
        self.height, self.width = int(shape[1]), int(shape[2])
        self._outputs = outputs
        for output in outputs:
            if list(output["shape"][:3]) != [1, self.height, self.width] or output["dtype"] != np.float32:
                raise ValueError(f"{path}: the outputs must be float32 [1, {self.height}, "
                                 f"{self.width}, channels], found {list(output['shape'])}")
        self.num_classes, self.embedding_dim = (int(output["shape"][3]) for output in outputs)

    def __call__(self, images):
        """`{"semantic_logits": float32 [N, H, W, C], "embeddings": float32 [N, H, W, D]}` of
        images [N, H, W, 3] (any numeric type, values in [0, 255], as the Keras model takes)."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (self.height, self.width, 3):
            raise ValueError(f"{self.path}: expected images [N, {self.height}, {self.width}, 3], "
                             f"got {list(images.shape)}")
        results = {name: [] for name in OUTPUT_NAMES}
        for image in images:
            # The predictor's frames are uint8 resized to the network size, passed as float.
            pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
            self.interpreter.set_tensor(self._input["index"], pixels[None])
            self.interpreter.invoke()
            for name, output in zip(OUTPUT_NAMES, self._outputs):
                results[name].append(self.interpreter.get_tensor(output["index"])[0])
        return {name: np.stack(values) for name, values in results.items()}
