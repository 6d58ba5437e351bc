"""Datasets: native formats -> TFRecords -> the tf.data pipeline."""
