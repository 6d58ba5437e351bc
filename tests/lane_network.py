"""A lane network stand-in shared by the inference and tuning tests."""
import keras
import numpy as np
import tensorflow as tf

from enet_discrim.model_dir import InferenceSettings

HEIGHT, WIDTH = 32, 64


class TwoLaneNetwork(keras.Model):
    """A lane model stand-in: the same two lanes whatever the frame, without building ENet.

    Lanes fill map columns 10-13 and 40-43 from map row 8 down; their embeddings lie 3 apart (twice
    the bandwidth). `right_lane_logit` sets how sure the network is of the right lane: its lane
    probability is 1 / (1 + exp(-right_lane_logit)), the left lane's 1 / (1 + exp(-5)).
    """

    def __init__(self, right_lane_logit=5.0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.embedding_dim = 2, 4
        logits = np.zeros((1, HEIGHT, WIDTH, 2), np.float32)
        logits[..., 0] = 5.0
        embeddings = np.zeros((1, HEIGHT, WIDTH, 4), np.float32)
        for columns, centre, lane_logit in ((slice(10, 14), 0.0, 5.0),
                                            (slice(40, 44), 3.0, right_lane_logit)):
            logits[0, 8:, columns] = [0.0, lane_logit]
            embeddings[0, 8:, columns, 0] = centre
        self.fixed_logits, self.fixed_embeddings = logits, embeddings

    def call(self, images, training=False):
        batch = tf.shape(images)[0]
        return {"semantic_logits": tf.repeat(tf.constant(self.fixed_logits), batch, axis=0),
                "embeddings": tf.repeat(tf.constant(self.fixed_embeddings), batch, axis=0)}


LANE_SETTINGS = InferenceSettings("tusimple", HEIGHT, WIDTH, 2, 4)
