"""Tests for enet_discrim.model_dir: the inference settings of a model folder, and its CLI."""
import json
import os

import numpy as np
import pytest

from enet_discrim import lanes, model_dir
from enet_discrim.model_dir import InferenceSettings

REQUIRED = {"dataset": "tusimple", "height": 64, "width": 128, "num_classes": 2, "embedding_dim": 4}


def _folder(tmp_path, values):
    """A model folder with a placeholder model file (the settings reader does not open it)."""
    (tmp_path / "model.keras").write_bytes(b"placeholder")
    (tmp_path / "config.json").write_text(json.dumps(values))
    return str(tmp_path)


def test_lane_models_are_those_of_the_lane_fit():
    assert model_dir.LANE_MODELS == lanes.LANE_MODELS


def test_round_trip_through_json(tmp_path):
    settings = InferenceSettings(**REQUIRED, class_names=("background", "lane"), min_confidence=0.3,
                                 lane_bridge_gaps=True, lane_extend_bottom=2.5)
    model_dir.write_settings(str(tmp_path), settings)
    (tmp_path / "model.keras").write_bytes(b"placeholder")
    assert model_dir.load_settings(str(tmp_path)) == settings
    assert json.loads((tmp_path / "config.json").read_text())["class_names"] == ["background", "lane"]


def test_missing_keys_take_the_defaults_of_the_dataclass(tmp_path):
    settings = model_dir.load_settings(_folder(tmp_path, REQUIRED))
    assert settings.min_confidence == 0.0 and settings.lane_top_trim == 0.0
    assert settings.lane_bridge_gaps is False and settings.cluster_all is True
    assert settings.thing_train_ids == (1,)


@pytest.mark.parametrize("change, message", [
    ({"height": 60}, "height must be a positive multiple of 8 up to 4096, got 60"),
    ({"width": 16384}, "width must be a positive multiple of 8 up to 4096, got 16384"),
    ({"min_confidence": 1.0}, r"min_confidence must be in \[0, 1\), got 1.0"),
    ({"lane_model": "cubic"}, "lane_model must be one of polynomial, hyperbola, got 'cubic'"),
    ({"lane_bridge_gaps": "yes"}, "lane_bridge_gaps must be true or false, got 'yes'"),
    ({"lane_extend_bottom": -1}, r"lane_extend_bottom must be a number of map rows in \[0, 4096\], got -1"),
    ({"lane_extend_bottom": 1e300}, r"lane_extend_bottom must be a number of map rows in \[0, 4096\]"),
    ({"max_lanes": 0}, "max_lanes must be a positive integer or null, got 0"),
    ({"bandwidth": float("nan")}, r"bandwidth must be a number in \(0, 100.0\], got nan"),
    ({"bandwidth": float("inf")}, r"bandwidth must be a number in \(0, 100.0\], got inf"),
    ({"thing_train_ids": [2]}, "thing_train_ids must be class ids below num_classes"),
    ({"colour": "red"}, "unknown key"),
])
def test_bad_values_name_the_file_and_the_key(tmp_path, change, message):
    folder = _folder(tmp_path, {**REQUIRED, **change})
    with pytest.raises(ValueError, match=f"config.json: .*{message}"):
        model_dir.load_settings(folder)


def test_missing_required_key_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="config.json lacks embedding_dim"):
        model_dir.load_settings(_folder(tmp_path, {k: v for k, v in REQUIRED.items()
                                                    if k != "embedding_dim"}))
    (tmp_path / "model.keras").unlink()
    with pytest.raises(ValueError, match="missing model.keras"):
        model_dir.load_settings(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.keras").write_bytes(b"placeholder")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        model_dir.load_settings(str(tmp_path))


def test_for_trained_model_sets_bandwidth_from_the_margins_and_lane_settings_only_for_lanes():
    lanes_settings = InferenceSettings.for_trained_model("tusimple", 64, 128, 2, 4, delta_v=0.4,
                                                         delta_d=2.0, lane_top_trim=0.5)
    assert lanes_settings.bandwidth == 2.0 and lanes_settings.lane_top_trim == 0.5
    assert lanes_settings.thing_train_ids == (1,)
    city = InferenceSettings.for_trained_model("cityscapes", 64, 128, 19, 8, delta_v=0.5,
                                               delta_d=1.5, thing_train_ids=range(11, 19),
                                               lane_top_trim=0.5)
    assert city.thing_train_ids == tuple(range(11, 19))
    assert city.min_confidence == 0.0 and city.lane_top_trim == 0.0
    assert city.lane_bridge_gaps is False and city.lane_extend_bottom == 0.0
    assert city.max_lanes is None


def test_cli_set_changes_only_the_named_keys_and_refuses_bad_values(tmp_path, capsys):
    folder = _folder(tmp_path, {**REQUIRED, "min_confidence": 0.85})
    assert model_dir.main(["set", folder, "min_confidence=0.5", "lane_bridge_gaps=true"]) == 0
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["min_confidence"] == 0.5 and written["lane_bridge_gaps"] is True
    assert written["height"] == 64 and written["dataset"] == "tusimple"
    before = (tmp_path / "config.json").read_text()
    assert model_dir.main(["set", folder, "min_confidence=2"]) == 2
    assert model_dir.main(["set", folder, "min_confidence"]) == 2
    assert (tmp_path / "config.json").read_text() == before
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors)
    assert "min_confidence must be in [0, 1), got 2" in errors[0]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.slow
def test_save_and_load_a_model_and_predict_from_objects(tmp_path):
    from enet_discrim.model import ENet
    from enet_discrim.predictor import Predictor

    model = ENet(num_classes=2, embedding_dim=4)
    model.build((None, 64, 128, 3))
    settings = InferenceSettings(**REQUIRED)
    model_dir.save(str(tmp_path), model, settings)
    loaded, loaded_settings = model_dir.load(str(tmp_path))
    assert loaded_settings == settings
    frame = np.random.default_rng(0).integers(0, 255, (72, 128, 3), dtype=np.uint8)
    from_folder = Predictor(str(tmp_path)).predict(frame)
    from_objects = Predictor(loaded, settings=settings).predict(frame)
    np.testing.assert_allclose(from_folder.embeddings, from_objects.embeddings, atol=1e-5)
    with pytest.raises(ValueError, match="needs its InferenceSettings"):
        Predictor(loaded)
    with pytest.raises(ValueError, match="disagree on classes"):
        model_dir.save(str(tmp_path / "other"), model, settings.replace(num_classes=3))


def _model_file_with_config(path, edit):
    """A copy of the shipped model.keras whose config.json went through `edit` (a dict -> dict)."""
    import zipfile

    source = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "trained_model", "model.keras")
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as copy:
        for item in original.infolist():
            data = original.read(item.filename)
            if item.filename == "config.json":
                data = json.dumps(edit(json.loads(data))).encode()
            copy.writestr(item, data)
    return str(path)


def test_model_files_that_are_no_model_of_ours_are_one_line(tmp_path):
    calls_os = _model_file_with_config(tmp_path / "os.keras", lambda config: {
        **config, "module": "os", "class_name": "system", "registered_name": None})
    with pytest.raises(ValueError, match=r"os.keras: not a model this project can load "
                                         r"\(Could not locate class 'system'"):
        model_dir.load_model_file(calls_os)
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(open(os.path.join(os.path.dirname(calls_os), "os.keras"), "rb").read()[:3000])
    with pytest.raises(ValueError, match=r"damaged.keras: not a Keras model file"):
        model_dir.load_model_file(str(damaged))
