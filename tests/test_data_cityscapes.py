"""Cityscapes converter: trainId mapping, thing instances, crowd regions, bad input, info merging."""
import json
import os

from cityscapesscripts.helpers.labels import id2label
from cityscapesscripts.helpers.labels import name2label
import cv2
import numpy as np
import pytest
import tensorflow as tf

from enet_discrim.data import cityscapes
from enet_discrim.data import find_shards
from enet_discrim.data import schema
from enet_discrim.data import writer

HEIGHT, WIDTH = 8, 16


def _ids(name):
    return name2label[name].id


def _label_maps():
    """labelIds and instanceIds of one 8x16 frame, in 2x2 blocks so a 2x downscale is exact."""
    label_ids = np.full((HEIGHT // 2, WIDTH // 2), _ids("road"), np.uint8)
    instance_ids = label_ids.astype(np.uint16)

    def paint(rows, columns, name, instance=None):
        label_ids[rows, columns] = _ids(name)
        instance_ids[rows, columns] = _ids(name) if instance is None else _ids(name) * 1000 + instance

    paint(0, slice(0, 8), "sky")
    paint(1, slice(0, 2), "car", 1)  # car 26001
    paint(1, slice(2, 4), "car", 0)  # car 26000
    paint(1, slice(4, 6), "person", 0)  # person 24000
    paint(2, slice(0, 3), "car")  # a crowd of cars: thing class, id below 1000 -> instance 0.
    paint(2, slice(3, 5), "caravan", 0)  # caravan 29000: hasInstances but trainId 255.
    paint(3, slice(0, 2), "parking")  # ignored class (trainId 255).
    label_ids[3, 7] = 200  # an id no label has -> ignore.
    instance_ids[3, 7] = 200
    upscale = lambda array: np.kron(array, np.ones((2, 2), array.dtype))
    return upscale(label_ids), upscale(instance_ids)


def _write_frame(root, split, city, stem, label_ids, instance_ids, image=None):
    image_folder = root / "leftImg8bit" / split / city
    label_folder = root / "gtFine" / split / city
    image_folder.mkdir(parents=True, exist_ok=True)
    label_folder.mkdir(parents=True, exist_ok=True)
    if image is None:
        image = np.random.default_rng(0).integers(0, 256, label_ids.shape + (3,), np.uint8)
    cv2.imwrite(str(image_folder / f"{stem}_leftImg8bit.png"), image)
    if label_ids is not None:
        cv2.imwrite(str(label_folder / f"{stem}_gtFine_labelIds.png"), label_ids)
    if instance_ids is not None:
        cv2.imwrite(str(label_folder / f"{stem}_gtFine_instanceIds.png"), instance_ids)


def _records(outdir, split):
    return [{key: value.numpy() for key, value in schema.decode_example(serialized).items()}
            for serialized in tf.data.TFRecordDataset(find_shards(str(outdir), split))]


def _expected(label_ids, instance_ids):
    semantic = np.vectorize(lambda label_id: id2label[label_id].trainId if label_id in id2label
                            and 0 <= id2label[label_id].trainId < 255 else 255)(label_ids)
    order = {26000: 2, 26001: 3, 24000: 1}  # sorted Cityscapes ids -> 1..K.
    instance = np.vectorize(lambda value: order.get(int(value), 0))(instance_ids)
    return semantic.astype(np.uint8), instance


@pytest.fixture
def cityscapes_root(tmp_path):
    root = tmp_path / "cityscapes"
    label_ids, instance_ids = _label_maps()
    _write_frame(root, "train", "aachen", "aachen_000000_000019", label_ids, instance_ids)
    _write_frame(root, "val", "bonn", "bonn_000001_000019", label_ids, instance_ids)
    return root


def test_lookup_tables_follow_cityscapesscripts():
    table = cityscapes.train_id_table()
    assert table[_ids("road")] == 0 and table[_ids("bicycle")] == 18
    assert table[_ids("parking")] == 255 and table[_ids("caravan")] == 255 and table[0] == 255
    assert cityscapes.class_names()[0] == "road" and cityscapes.class_names()[18] == "bicycle"
    assert len(cityscapes.class_names()) == 19
    assert cityscapes.thing_train_ids() == [11, 12, 13, 14, 15, 16, 17, 18]


def test_convert_maps_train_ids_and_instances(cityscapes_root, tmp_path):
    out = tmp_path / "out"
    summary = cityscapes.convert(str(cityscapes_root), str(out), "train", height=HEIGHT, width=WIDTH)
    assert summary["counts"] == {"train": 1} and summary["skipped"] == []
    [record] = _records(out, "train")
    assert record["filename"].decode() == "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"
    label_ids, instance_ids = _label_maps()
    semantic, instance = _expected(label_ids, instance_ids)
    np.testing.assert_array_equal(record["semantic"], semantic)
    np.testing.assert_array_equal(record["instance"], instance)
    crowd = (label_ids == _ids("car")) & (instance_ids < 1000)
    assert crowd.any() and not record["instance"][crowd].any()
    assert np.all(record["semantic"][crowd] == name2label["car"].trainId)


def test_downscaled_labels_stay_exact(cityscapes_root, tmp_path):
    out = tmp_path / "out"
    cityscapes.convert(str(cityscapes_root), str(out), "train", height=HEIGHT // 2, width=WIDTH // 2)
    [record] = _records(out, "train")
    label_ids, instance_ids = _label_maps()
    semantic, instance = _expected(label_ids[::2, ::2], instance_ids[::2, ::2])
    assert record["image"].shape == (HEIGHT // 2, WIDTH // 2, 3)
    np.testing.assert_array_equal(record["semantic"], semantic)
    np.testing.assert_array_equal(record["instance"], instance)


def test_dataset_info_merges_the_two_splits(cityscapes_root, tmp_path, capsys):
    out = tmp_path / "out"
    for split in ("train", "val"):
        assert cityscapes.main(["--srcdir", str(cityscapes_root), "--outdir", str(out),
                                "--split", split, "--height", "4", "--width", "8"]) == 0
    assert "written: val 1; skipped: 0" in capsys.readouterr().out
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["dataset"] == "cityscapes" and info["num_classes"] == 19
    assert info["counts"] == {"train": 1, "val": 1} and info["ignore_label"] == 255
    assert info["thing_train_ids"] == [11, 12, 13, 14, 15, 16, 17, 18]
    assert info["class_names"][13] == "car" and (info["height"], info["width"]) == (4, 8)
    assert len(find_shards(str(out), "train")) == 1 and len(find_shards(str(out), "val")) == 1


def test_bad_frames_are_reported_and_skipped_or_fail_under_strict(cityscapes_root, tmp_path, capsys):
    label_ids, instance_ids = _label_maps()
    _write_frame(cityscapes_root, "train", "aachen", "aachen_1", label_ids, None)
    _write_frame(cityscapes_root, "train", "aachen", "aachen_2", label_ids, instance_ids)
    garbage = cityscapes_root / "gtFine/train/aachen/aachen_2_gtFine_labelIds.png"
    garbage.write_bytes(b"not a png")
    _write_frame(cityscapes_root, "train", "aachen", "aachen_3", label_ids[:, :-2], instance_ids[:, :-2],
                 image=np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    image = lambda stem: str(cityscapes_root / f"leftImg8bit/train/aachen/{stem}_leftImg8bit.png")

    out = tmp_path / "out"
    assert cityscapes.main(["--srcdir", str(cityscapes_root), "--outdir", str(out), "--split",
                            "train", "--strict"]) == 2
    assert "3 bad input item(s), nothing written" in capsys.readouterr().err
    assert not out.exists()

    summary = cityscapes.convert(str(cityscapes_root), str(out), "train", height=HEIGHT, width=WIDTH)
    skipped = summary["skipped"]  # in frame order.
    assert skipped[0].startswith(f"{image('aachen_1')}: missing gtFine partner ")
    assert skipped[0].endswith("aachen_1_gtFine_instanceIds.png")
    assert skipped[1] == f"{garbage}: not a readable image (labelIds)"
    assert skipped[2] == (f"{image('aachen_3')}: size mismatch: image 16x8, labelIds 14x8, "
                          "instanceIds 14x8")
    assert summary["counts"] == {"train": 1}
    assert len(_records(out, "train")) == 1


def test_not_a_cityscapes_root_is_a_clear_error(tmp_path):
    assert not cityscapes.is_cityscapes_root(str(tmp_path))
    with pytest.raises(ValueError, match="not a Cityscapes root"):
        cityscapes.convert(str(tmp_path), str(tmp_path / "out"), "train")
    (tmp_path / "leftImg8bit").mkdir()
    (tmp_path / "gtFine").mkdir()
    assert cityscapes.is_cityscapes_root(str(tmp_path))
    with pytest.raises(ValueError, match="no images matching leftImg8bit/val"):
        cityscapes.convert(str(tmp_path), str(tmp_path / "out"), "val")
    with pytest.raises(ValueError, match="split must be one of"):
        cityscapes.convert(str(tmp_path), str(tmp_path / "out"), "test")


# --- Reliability (issue 15).

def test_an_8_bit_instance_ids_png_is_skipped_not_stripped_of_its_instances(cityscapes_root,
                                                                           tmp_path):
    # Issue 15 item 3: ids mod 256 were accepted, and every instance was dropped.
    label_ids, instance_ids = _label_maps()
    _write_frame(cityscapes_root, "train", "aachen", "aachen_8bit", label_ids,
                 (instance_ids % 256).astype(np.uint8))
    summary = cityscapes.convert(str(cityscapes_root), str(tmp_path / "out"), "train",
                                 height=HEIGHT, width=WIDTH)
    partner = cityscapes_root / "gtFine/train/aachen/aachen_8bit_gtFine_instanceIds.png"
    assert summary["skipped"] == [
        f"{partner}: instanceIds must be a single-channel 16-bit PNG, got uint8 "
        f"({HEIGHT}, {WIDTH})"]
    assert summary["counts"] == {"train": 1}


def test_zero_byte_pngs_are_skipped(cityscapes_root, tmp_path):
    # Issue 15 item 7: cv2.error (!buf.empty()) stopped the conversion.
    label_ids, instance_ids = _label_maps()
    _write_frame(cityscapes_root, "train", "aachen", "aachen_empty_label", label_ids, instance_ids)
    _write_frame(cityscapes_root, "train", "aachen", "aachen_empty_image", label_ids, instance_ids)
    empty_label = cityscapes_root / "gtFine/train/aachen/aachen_empty_label_gtFine_labelIds.png"
    empty_image = cityscapes_root / "leftImg8bit/train/aachen/aachen_empty_image_leftImg8bit.png"
    empty_label.write_bytes(b"")
    empty_image.write_bytes(b"")
    summary = cityscapes.convert(str(cityscapes_root), str(tmp_path / "out"), "train",
                                 height=HEIGHT, width=WIDTH)
    assert summary["skipped"] == [f"{empty_image}: empty file (0 bytes) (image)",
                                  f"{empty_label}: empty file (0 bytes) (labelIds)"]
    assert summary["counts"] == {"train": 1}


@pytest.mark.parametrize("content", ["[1, 2]", '"text"', "{not json", '{"counts": [1]}', "{}",
                                     '{"num_classes": "two", "class_names": ["a", "b"]}'])
def test_a_garbage_dataset_info_is_named_and_rewritten(cityscapes_root, tmp_path, content, caplog):
    # Issue 15 item 17: a garbage dataset_info.json gave a bare error naming no file.
    out = tmp_path / "out"
    out.mkdir()
    info_path = out / "dataset_info.json"
    info_path.write_text(content)
    with pytest.raises(ValueError, match=f"^{info_path}: "):
        writer.read_dataset_info(str(info_path))
    cityscapes.convert(str(cityscapes_root), str(out), "train", height=HEIGHT, width=WIDTH)
    assert json.loads(info_path.read_text())["counts"] == {"train": 1}
    assert any(str(info_path) in record.getMessage() and "writing it afresh" in record.getMessage()
               for record in caplog.records)


def test_a_city_folder_linked_from_outside_the_root_is_refused(cityscapes_root, tmp_path):
    label_ids, instance_ids = _label_maps()
    elsewhere = tmp_path / "elsewhere"
    _write_frame(elsewhere, "train", "köln", "koeln_000000_000019", label_ids, instance_ids)
    os.symlink(elsewhere / "leftImg8bit" / "train" / "köln",
               cityscapes_root / "leftImg8bit" / "train" / "koeln")
    summary = cityscapes.convert(str(cityscapes_root), str(tmp_path / "out"), "train",
                                 height=HEIGHT, width=WIDTH)
    assert summary["counts"] == {"train": 1}  # aachen's frame only
    [problem] = summary["skipped"]
    assert "koeln_000000_000019_leftImg8bit.png" in problem
    assert "resolves outside the dataset root, refused" in problem


def test_a_split_whose_every_frame_is_bad_is_an_error(cityscapes_root, tmp_path, capsys):
    (cityscapes_root / "gtFine/val/bonn/bonn_000001_000019_gtFine_labelIds.png").write_bytes(b"x")
    out = tmp_path / "out"
    assert cityscapes.main(["--srcdir", str(cityscapes_root), "--outdir", str(out), "--split",
                            "val"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        "error: Cityscapes val: nothing converted, all 1 input item(s) are bad")
    assert not out.exists()
