"""The training loop: data, strategy, resume, validation, TensorBoard, the saved model.

`train(config)` is what `training.py` runs. Output in `config.outdir`:
- `model.keras`: the model with the best validation loss (saved atomically), or the latest one
  when the records have no validation split;
- `config.json`: everything inference needs (`model_dir.InferenceSettings`);
- `model_validation_loss.json`: that model's validation loss and step, so that a run resumed
  from an older checkpoint replaces it only with a better one;
- `train_config.json`: the resolved settings of the run;
- `checkpoints/`: `tf.train.CheckpointManager` checkpoints (model, optimizer, step, epoch).
"""

import contextlib
import math
import os
import re
import shutil
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from enet_discrim import atomic
from enet_discrim import data as data_lib
from enet_discrim import model_dir
from enet_discrim.data import records
from enet_discrim.data import lane_labels
from enet_discrim.data.pipeline import check_examples, check_records, has_shards
from enet_discrim.formats import LANE_DATASETS
from enet_discrim.losses import class_weights_from_counts
from enet_discrim.model import ENet
from enet_discrim.training import summaries
from enet_discrim.training import distribution
from enet_discrim.training.config import TrainConfig, read_json, write_json
from enet_discrim.training.step import LOSS_NAMES, LossSettings, make_eval_step, make_train_step

MODEL_FILE = model_dir.MODEL_FILE
INFERENCE_CONFIG_FILE = model_dir.CONFIG_FILE
RUN_CONFIG_FILE = "train_config.json"
CHECKPOINT_DIR = "checkpoints"
#: The validation loss of the `model.keras` in outdir, beside it: {"validation_loss", "step"}.
MODEL_LOSS_FILE = "model_validation_loss.json"
#: The temporary model of `model_dir.save` before it tagged its temporaries with the process id
#: (`atomic.replacing`); still removed when found.
MODEL_TEMP_FILE = "model.tmp.keras"
#: tf.train.Checkpoint writes ckpt-N_temp/ and then merges it into ckpt-N.index / .data-*.
CHECKPOINT_TEMP_SUFFIX = "_temp"
#: The checkpoint key of the step at which the current epoch began.
EPOCH_START_KEY = "epoch_start_step/.ATTRIBUTES/VARIABLE_VALUE"
# Frames whose labels are read to estimate the class weights once.
CLASS_WEIGHT_FRAMES = 200


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


def train(config, strategy=None):
    """Trains (or resumes training of) ENet with the discriminative loss.

    Every check runs before anything is written to `config.outdir` or `config.logdir`. A run
    resumes from the latest checkpoint, whichever step it was saved at; the checkpoint records
    where its epoch began, so a changed `steps_per_epoch` applies from the epoch in progress. A
    run that fails before its first checkpoint removes the folders and files it created.

    Args:
        config: `TrainConfig`.
        strategy: optional `tf.distribute.Strategy`; default from `config.strategy`.

    Returns:
        dict: "epochs" completed, "steps", "best_val_loss", "images_per_second" (of the last epoch
        trained, None when nothing was left to train), "outdir".

    Raises:
        ValueError: bad settings, a missing/empty srcdir, an outdir of another configuration or
            in use by another running training (`atomic.FolderInUseError`), a truncated or
            corrupt TFRecord shard (named), or a record whose image does not decode (named, with
            its shard).
        TrainingDivergedError: NaN or Inf loss; the last good checkpoint stays.
    """
    config.validate()
    _check_outdir(config)  # before the records are converted; again once outdir is held
    records_dir, info = prepare_records(config)
    strategy = strategy or distribution.make_strategy(config.strategy, config.peer_timeout)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"--batch_size {config.batch_size} must be a multiple of the {strategy.num_replicas_in_sync} replicas"
        )
    train_files = data_lib.find_shards(records_dir, "train")
    val_files = data_lib.find_shards(records_dir, "val") if has_shards(records_dir, "val") else []
    # One run at a time in outdir (workers of one cluster share it: the chief holds it).
    with (atomic.folder_lock(config.outdir, "train") if distribution.is_chief(strategy)
          else contextlib.nullcontext()):
        previous = _check_outdir(config)  # again: a run that ended meanwhile may have changed it
        return _train_with_policy(config, strategy, records_dir, info, previous, train_files,
                                  val_files)


def _train_with_policy(config, strategy, records_dir, info, previous, train_files, val_files):
    """`_train` under `config`'s mixed-precision policy; the caller's policy is restored after."""
    callers_policy = keras.mixed_precision.global_policy()
    try:
        if config.mixed_precision:
            # float16 with loss scaling on GPUs; bfloat16 (no scaling needed) where there is none.
            policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
            keras.mixed_precision.set_dtype_policy(policy)
            logging.info("Mixed precision: %s", policy)
        return _train(config, strategy, records_dir, info, previous, train_files, val_files)
    except tf.errors.DataLossError:
        check_records(train_files + val_files)  # a ValueError naming the bad shard
        raise
    except tf.errors.InvalidArgumentError:
        check_examples(train_files + val_files)  # a ValueError naming a record that does not decode
        raise
    finally:
        keras.mixed_precision.set_dtype_policy(callers_policy)


def _train(config, strategy, records_dir, info, previous, train_files, val_files):
    """`train` once the settings and the records are known to be good."""
    num_train = records.count_frames(info, "train", train_files)
    steps_per_epoch = config.steps_per_epoch or max(1, num_train // config.batch_size)
    class_weights = _check_class_weights((previous or {}).get("class_weights"), info["num_classes"],
                                         config.outdir) or _estimate_class_weights(
        train_files, config, info["num_classes"]
    )
    settings = LossSettings(
        delta_v=config.delta_v,
        delta_d=config.delta_d,
        var_weight=config.var_weight,
        dist_weight=config.dist_weight,
        reg_weight=config.reg_weight,
        per_class=config.dataset == "cityscapes",
        class_weights=tuple(class_weights),
        ignore_label=info.get("ignore_label", 255),
    )

    with strategy.scope():
        model = _build_model(config, info["num_classes"])
        model.build((None, config.height, config.width, 3))  # optimizer slots need the weights
        optimizer = keras.optimizers.Adam(config.learning_rate)
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        # Optimizer slots must exist before a checkpoint restores them.
        optimizer.build(model.trainable_variables)
    # Bookkeeping of the loop, read on the host: plain variables, not mirrored over the replicas.
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    epoch_start_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch_start_step")
    best_val_loss = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_val_loss")
    # The epoch's running means are checkpointed with its steps, so that a resumed epoch reports
    # the mean over all of its steps.
    train_loss_means = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}
    core = dict(model=model, optimizer=optimizer, epoch=epoch, best_val_loss=best_val_loss)
    checkpoint = tf.train.Checkpoint(
        **core,
        epoch_start_step=epoch_start_step,
        train_loss_means={name: mean.variables for name, mean in train_loss_means.items()},
    )
    is_chief = distribution.is_chief(strategy)
    checkpoint_dir = os.path.join(config.outdir, CHECKPOINT_DIR)
    if not is_chief:
        checkpoint_dir = os.path.join(checkpoint_dir, f"worker_{distribution.task_id(strategy)}")
    restored = _newest_readable_checkpoint(checkpoint_dir)
    if restored:
        earlier_steps_per_epoch = (previous or {}).get("steps_per_epoch") or steps_per_epoch
        _restore(restored, checkpoint, core, epoch_start_step, earlier_steps_per_epoch)
        # The model in outdir may be better than what that checkpoint knew (its later
        # checkpoints were damaged): a later epoch replaces it only when better still.
        best_val_loss.assign(min(float(best_val_loss), _saved_model_loss(config.outdir)))
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=3)

    # Every check has passed: from here on the run writes.
    log_root = config.logdir if is_chief else os.path.join(config.logdir, f"worker_{distribution.task_id(strategy)}")
    created = []  # the folders and files this run made, removed if it fails before a checkpoint
    try:
        for folder in (config.outdir, os.path.join(log_root, "train"), os.path.join(log_root, "validation")):
            created.append(_make_folders(folder))
        if is_chief:
            _remove_leftovers(config.outdir)
            run_config_path = os.path.join(config.outdir, RUN_CONFIG_FILE)
            if not os.path.exists(run_config_path):
                created.append(run_config_path)
            run_config = {**config.to_dict(), "class_weights": class_weights, "records_dir": records_dir}
            write_json(run_config_path, run_config)

        train_dataset = data_lib.build_dataset(
            train_files,
            batch_size=config.batch_size,
            height=config.height,
            width=config.width,
            is_training=True,
            seed=config.seed,
            repeat=True,
            crop_size=config.crop_size,
        )
        train_dataset = distribution.shard_across_workers(train_dataset, strategy, len(train_files))
        iterator = iter(strategy.experimental_distribute_dataset(train_dataset))
        train_step = make_train_step(model, optimizer, strategy, settings)
        eval_step = make_eval_step(model, strategy, settings)
        train_writer = tf.summary.create_file_writer(os.path.join(log_root, "train"))
        val_writer = tf.summary.create_file_writer(os.path.join(log_root, "validation"))

        if not val_files:
            logging.warning("No validation shards (val-*.tfrecord) in %s: %s will be the model "
                            "after the last epoch", records_dir, MODEL_FILE)
        images_per_second = None
        while int(epoch) < config.epochs:
            # Steps of this epoch trained before a restart; more than steps_per_epoch when a run
            # resumes with fewer.
            done = _step(optimizer) - int(epoch_start_step)
            progress = keras.utils.Progbar(steps_per_epoch, stateful_metrics=LOSS_NAMES)
            progress.update(min(done, steps_per_epoch))
            start = time.perf_counter()
            for _ in range(done, steps_per_epoch):
                losses = {name: float(value) for name, value in train_step(iterator).items()}
                step = _step(optimizer)
                if not all(math.isfinite(value) for value in losses.values()):
                    raise TrainingDivergedError(
                        f"Loss became {losses['total']} at step {step} (epoch {int(epoch) + 1}); stopped "
                        f"without saving. Last good checkpoint: {manager.latest_checkpoint or 'none'}. "
                        "Try a lower --learning_rate."
                    )
                for name, value in losses.items():
                    train_loss_means[name].update_state(value)
                progress.update(
                    step - int(epoch_start_step),
                    [(name, float(mean.result())) for name, mean in train_loss_means.items()],
                )
                with train_writer.as_default(step=step):
                    summaries.write_scalars(losses, learning_rate=_learning_rate(optimizer))
                if config.checkpoint_every and step % config.checkpoint_every == 0:
                    manager.save(checkpoint_number=step)
            if done < steps_per_epoch:
                images_per_second = (steps_per_epoch - done) * config.batch_size / (time.perf_counter() - start)

            step = _step(optimizer)
            steps_averaged = int(train_loss_means["total"].count)
            train_loss = float(train_loss_means["total"].result()) if steps_averaged else math.inf
            epoch.assign_add(1)
            epoch_start_step.assign(step)
            if val_files:
                val_loss = _validate(model, eval_step, strategy, val_files, config, val_writer, step, info)
                improved = val_loss < float(best_val_loss)
                if improved:
                    best_val_loss.assign(val_loss)
            else:
                val_loss, improved = None, True  # no way to compare: keep the latest
            logging.info(
                "Epoch %d/%d: train loss %s, validation loss %s, %.1f images/s",
                int(epoch), config.epochs,
                f"{train_loss:.4f} (mean of {steps_averaged} steps)" if steps_averaged else "unknown",
                "none" if val_loss is None else f"{val_loss:.4f}", images_per_second or 0.0,
            )
            if improved and is_chief:
                save_model(model, config, info, class_weights)
                if val_loss is not None:
                    write_json(os.path.join(config.outdir, MODEL_LOSS_FILE),
                               {"validation_loss": val_loss, "step": step})
            for mean in train_loss_means.values():
                mean.reset_state()
            manager.save(checkpoint_number=step)

        if is_chief and not os.path.exists(os.path.join(config.outdir, MODEL_FILE)):
            save_model(model, config, info, class_weights)
        distribution.barrier(strategy)
    except BaseException:
        # Nothing to resume from: leave nothing behind (the chief only: workers share outdir).
        if is_chief and manager.latest_checkpoint is None:
            _remove_created(created)
        raise
    return {
        "epochs": int(epoch),
        "steps": _step(optimizer),
        "best_val_loss": float(best_val_loss),
        "images_per_second": images_per_second,
        "outdir": config.outdir,
    }


def _checkpoints(checkpoint_dir):
    """The checkpoints (`ckpt-N` prefixes) in `checkpoint_dir`, newest first, found by their
    index files: the state file `checkpoint` may be damaged or name fewer."""
    found = []
    for path in tf.io.gfile.glob(os.path.join(checkpoint_dir, "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(path))
        if match:
            found.append((int(match[1]), path[:-len(".index")]))
    return [path for _, path in sorted(found, reverse=True)]


def _unreadable(path):
    """Why checkpoint `path` cannot be read (every tensor is read), or None when it can."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, ValueError, IndexError) as error:  # IndexError: a cut data file
        message = getattr(error, "message", str(error))
        return (message.strip().splitlines() or ["unreadable"])[0]
    return None


def _newest_readable_checkpoint(checkpoint_dir):
    """The newest checkpoint in `checkpoint_dir` that reads, or None when there is none.

    Checkpoints are read newest first, every tensor, until one reads. A damaged newer one is
    skipped with a warning naming it; the state file is rewritten to list the one that reads and
    the older ones, so that `CheckpointManager` keeps and rotates them as before.

    Raises:
        ValueError: checkpoints are there but none reads (naming the newest): the run would
            start from step 0 and replace the model trained so far.
    """
    found = _checkpoints(checkpoint_dir)
    readable, damaged = [], []
    for index, path in enumerate(found):
        reason = _unreadable(path)
        if reason is None:  # this one and the older ones, which a later resume checks in turn
            readable = found[index:]
            break
        damaged.append((path, reason))
    if found and not readable:
        path, reason = damaged[0]
        raise ValueError(f"{path}: damaged checkpoint ({reason}), and no earlier one in "
                         f"{checkpoint_dir} reads; move {checkpoint_dir} away to train from the "
                         "start")
    for path, reason in damaged:
        logging.warning("%s: damaged checkpoint (%s): skipped", path, reason)
    if not readable:
        return None
    try:
        state = tf.train.get_checkpoint_state(checkpoint_dir)
    except (tf.errors.OpError, ValueError):
        state = None
    listed = [] if state is None else [os.path.basename(path) for path in state.all_model_checkpoint_paths]
    names = [os.path.basename(path) for path in reversed(readable)]  # oldest first
    if state is None or os.path.basename(state.model_checkpoint_path) != names[-1] or listed != names:
        if state is None and os.path.exists(os.path.join(checkpoint_dir, "checkpoint")):
            logging.warning("%s: damaged; rebuilt from the checkpoints that read",
                            os.path.join(checkpoint_dir, "checkpoint"))
        # CheckpointManager has no way to adopt checkpoints it does not list; this writes the
        # state file it reads (deprecated in TF 2, still CheckpointManager's own format).
        # With their times, they are the manager's to rotate (without, it keeps them forever).
        times = [os.path.getmtime(path + ".index") for path in reversed(readable)]
        tf.compat.v1.train.update_checkpoint_state(
            checkpoint_dir, readable[0], all_model_checkpoint_paths=list(reversed(readable)),
            all_model_checkpoint_timestamps=times, last_preserved_timestamp=min(times) - 1)
    return readable[0]


def _saved_model_loss(outdir):
    """The validation loss of `outdir`'s model.keras (`MODEL_LOSS_FILE`), inf when unknown."""
    try:
        loss = read_json(os.path.join(outdir, MODEL_LOSS_FILE))["validation_loss"]
    except (OSError, ValueError, KeyError, TypeError):
        return math.inf
    return float(loss) if isinstance(loss, (int, float)) and math.isfinite(loss) else math.inf


def _restore(path, checkpoint, core, epoch_start_step, earlier_steps_per_epoch):
    """Restores `checkpoint` from `path`.

    A checkpoint written before the epoch's start step and loss means were saved holds only
    `core` (model, optimizer, epoch, best_val_loss); its epochs were `earlier_steps_per_epoch`
    long, which gives the start of the epoch in progress.
    """
    if EPOCH_START_KEY in {name for name, _ in tf.train.list_variables(path)}:
        checkpoint.restore(path).assert_existing_objects_matched()
    else:
        tf.train.Checkpoint(**core).restore(path).assert_existing_objects_matched()
        step, epoch = _step(core["optimizer"]), int(core["epoch"])
        epoch_start_step.assign(min(step, epoch * earlier_steps_per_epoch))
    step = _step(core["optimizer"])
    logging.info("Resuming from %s at step %d: %d epochs done, %d steps into the next",
                 path, step, int(core["epoch"]), step - int(epoch_start_step))


def prepare_records(config):
    """`records.prepare_records` for the srcdir, dataset and size of `config` (a `TrainConfig`)."""
    return records.prepare_records(config.srcdir, config.dataset, config.height, config.width)


def save_model(model, config, info, class_weights=None):
    """Writes `model.keras` and `config.json` to `config.outdir`, each atomically."""
    del class_weights  # kept in train_config.json; inference does not need them
    model_dir.save(config.outdir, model, inference_settings(config, info))
    logging.info("Saved %s", os.path.join(config.outdir, MODEL_FILE))


#: Share of the training labels' lane line thickness (in map rows) that `lanes.fit_lanes` trims
#: from the upper end of each lane: the round caps of the label lines start a lane's mask half a
#: thickness above its last labelled point, and the model's masks end less sharply.
LANE_TOP_TRIM_PER_THICKNESS = 0.25


def inference_settings(config, info):
    """The `model_dir.InferenceSettings` of a model trained with `config` on records `info`."""
    lanes = config.dataset in LANE_DATASETS
    return model_dir.InferenceSettings.for_trained_model(
        dataset=config.dataset, height=config.height, width=config.width,
        num_classes=info["num_classes"], embedding_dim=config.embedding_dim,
        delta_v=config.delta_v, delta_d=config.delta_d, class_names=info["class_names"],
        thing_train_ids=info.get("thing_train_ids"), ignore_label=info.get("ignore_label", 255),
        lane_top_trim=lane_top_trim(config, info) if lanes else 0.0)


def inference_config(config, info):
    """`inference_settings` as the dict written to `config.json`."""
    return inference_settings(config, info).to_dict()


def lane_top_trim(config, info):
    """Map rows `fit_lanes` trims from each lane's top: LANE_TOP_TRIM_PER_THICKNESS of the label
    line thickness the records were drawn with (dataset_info.json), scaled to the training width."""
    records_width = info.get("width", config.width)
    thickness = info.get("lane_thickness", lane_labels.lane_thickness(records_width))
    return LANE_TOP_TRIM_PER_THICKNESS * thickness * config.width / records_width


def _clustering_settings(config, info):
    settings = inference_settings(config, info)
    return {"bandwidth": settings.bandwidth, "min_confidence": settings.min_confidence}


def _validate(model, eval_step, strategy, val_files, config, writer, step, info):
    dataset = data_lib.build_dataset(
        val_files,
        batch_size=config.batch_size,
        height=config.height,
        width=config.width,
        is_training=False,
        # Replicas need equal shares of a batch; one device can take the partial last batch.
        drop_remainder=strategy.num_replicas_in_sync > 1,
    )
    if config.validation_steps:
        dataset = dataset.take(config.validation_steps)
    dataset = distribution.every_worker_reads_all(dataset)
    totals, batches = {}, 0
    for batch in strategy.experimental_distribute_dataset(dataset):
        for name, value in eval_step(batch).items():
            totals[name] = totals.get(name, 0.0) + float(value)
        batches += 1
    if not batches:
        logging.warning("Validation set smaller than one batch of %d: skipped", config.batch_size)
        return math.inf
    means = {name: total / batches for name, total in totals.items()}
    if distribution.is_chief(strategy):
        first_images, first_labels = next(iter(dataset.unbatch().batch(config.image_summaries)))
        with writer.as_default(step=step):
            summaries.write_scalars(means)
            summaries.write_images(
                model, first_images, first_labels, info, **_clustering_settings(config, info)
            )
        summaries.write_embedding_scatter(
            model, first_images, first_labels, os.path.join(config.logdir, f"embeddings_step_{step:07d}.png")
        )
    return means["total"]


def _build_model(config, num_classes):
    if not config.modeldir:
        return ENet(num_classes=num_classes, embedding_dim=config.embedding_dim)
    path = os.path.join(config.modeldir, MODEL_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"--modeldir {config.modeldir!r} has no {MODEL_FILE} to fine-tune from")
    model = model_dir.load_model_file(path)
    if (model.num_classes, model.embedding_dim) != (num_classes, config.embedding_dim):
        raise ValueError(
            f"{path} has {model.num_classes} classes and {model.embedding_dim}-D embeddings; this run "
            f"needs {num_classes} classes and --embedding_dim {config.embedding_dim}"
        )
    logging.info("Fine-tuning from %s", path)
    return model


def _check_outdir(config):
    """Returns the previous run's settings in outdir (None if new); refuses another configuration.

    A `train_config.json` beside no checkpoint and no model (a run killed in its first epoch)
    binds nothing: the new run starts afresh.
    """
    path = os.path.join(config.outdir, RUN_CONFIG_FILE)
    has_model = os.path.exists(os.path.join(config.outdir, MODEL_FILE))
    if not os.path.exists(path):
        if has_model:
            raise ValueError(
                f"--outdir {config.outdir!r} already holds a {MODEL_FILE} from elsewhere; choose "
                "another --outdir (or pass it as --modeldir to fine-tune from it)"
            )
        return None
    if not has_model and not _checkpoints(os.path.join(config.outdir, CHECKPOINT_DIR)):
        return None
    try:
        previous = read_json(path)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path}: not readable JSON ({error})") from None
    if not isinstance(previous, dict):
        raise ValueError(f"{path}: not a run's settings (a JSON object), got {type(previous).__name__}")
    mismatches = config.model_mismatches(previous)
    if mismatches:
        described = ", ".join(f"{key} {old!r} (now {new!r})" for key, (old, new) in mismatches.items())
        raise ValueError(
            f"--outdir {config.outdir!r} holds a model of a different configuration: {described}. "
            "Choose another --outdir, or delete that one to start over."
        )
    return previous


def _check_class_weights(weights, num_classes, outdir):
    """`weights` as the run config keeps them (None, or one positive finite number per class);
    raises ValueError naming the run config otherwise."""
    if weights is None:
        return None
    if (not isinstance(weights, list) or len(weights) != num_classes
            or not all(isinstance(weight, (int, float)) and not isinstance(weight, bool)
                       and math.isfinite(weight) and weight > 0 for weight in weights)):
        raise ValueError(f"{os.path.join(outdir, RUN_CONFIG_FILE)}: class_weights must be a list "
                         f"of {num_classes} positive numbers, got {weights!r}")
    return weights


def _make_folders(path):
    """Creates folder `path` and its missing parents; returns the topmost one created, or None."""
    topmost, parent = None, os.path.abspath(path)
    while not os.path.exists(parent):
        topmost, parent = parent, os.path.dirname(parent)
    os.makedirs(path, exist_ok=True)
    return topmost


def _remove_created(paths):
    """Removes the files and folders (with their contents) of `paths`; None entries are skipped."""
    for path in reversed([path for path in paths if path]):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.remove(path)


def _remove_leftovers(outdir):
    """Removes what saves killed half-way leave in `outdir`: the atomic writer's temporaries of
    processes that are gone (`model_dir.save`'s included), an older version's temporary model and
    the checkpoints' temporary folders."""
    files = []
    old_model = os.path.join(outdir, MODEL_TEMP_FILE)
    if os.path.isfile(old_model):
        os.remove(old_model)
        files.append(old_model)
    files += atomic.remove_leftovers(outdir, atomic.TEMP_PREFIX)
    checkpoint_dir = os.path.join(outdir, CHECKPOINT_DIR)
    folders = [
        os.path.join(checkpoint_dir, name)
        for name in (os.listdir(checkpoint_dir) if os.path.isdir(checkpoint_dir) else [])
        if name.endswith(CHECKPOINT_TEMP_SUFFIX) and os.path.isdir(os.path.join(checkpoint_dir, name))
    ]
    for path in folders:
        shutil.rmtree(path)
    for path in files + folders:
        logging.info("Removed %s, left by an interrupted save", path)


def _estimate_class_weights(train_files, config, num_classes):
    dataset = data_lib.build_dataset(
        train_files, batch_size=1, height=config.height, width=config.width, is_training=False
    )
    counts = np.zeros(num_classes, np.int64)
    for _, labels in dataset.take(CLASS_WEIGHT_FRAMES):
        semantic = labels["semantic"].numpy().ravel()
        counts += np.bincount(semantic[semantic < num_classes], minlength=num_classes)
    weights = class_weights_from_counts(counts)
    logging.info("Class weights from %d pixels: %s", counts.sum(), np.round(weights, 2).tolist())
    return [float(weight) for weight in weights]


def _step(optimizer):
    """The optimizer's step count, read on the host (a mirrored variable under a strategy)."""
    return int(tf.convert_to_tensor(optimizer.iterations.value))


def _learning_rate(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
