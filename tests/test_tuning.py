"""`enet-discrim tune`: settings scored on every labelled set, the worst set deciding, the fewest
changes among ties, and config.json written only when asked."""
import json

import cv2
import numpy as np
import pytest

from enet_discrim.cli import tune as tune_cli
from enet_discrim.evaluation import tuning
from enet_discrim.formats import culane as culane_format
from enet_discrim.predictor import Predictor
from tests.lane_network import LANE_SETTINGS, WIDTH, TwoLaneNetwork

#: TwoLaneNetwork's right lane has probability 1 / (1 + e^-1) = 0.731 with this logit.
RIGHT_LANE_LOGIT = 1.0


def _lanes_in_frame(frame_height, frame_width):
    """TwoLaneNetwork's lanes in a frame's pixels: x at the centres of map columns 10-13 and
    40-43, from map row 8 down."""
    scale_x = frame_width / WIDTH
    return [(11.5 + 0.5) * scale_x - 0.5, (41.5 + 0.5) * scale_x - 0.5]


def _tusimple_set(folder, size=(180, 320)):
    """One frame labelled with both of TwoLaneNetwork's lanes, at TuSimple-like rows."""
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "a.jpg"), np.zeros(size + (3,), np.uint8))
    rows = list(range(60, size[0], 10))
    lanes = [[round(x)] * len(rows) for x in _lanes_in_frame(*size)]
    path = folder / "labels.json"
    path.write_text(json.dumps({"raw_file": "a.jpg", "lanes": lanes, "h_samples": rows}) + "\n")
    return str(path)


def _culane_set(root, size=(164, 410)):
    (root / "list").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "f.jpg"), np.zeros(size + (3,), np.uint8))
    rows = [row for row in culane_format.sample_rows(size[0]) if row >= 60]
    lanes = [[(round(x), row) for row in rows] for x in _lanes_in_frame(*size)]
    (root / "f.lines.txt").write_text(culane_format.format_lanes(lanes))
    (root / "list" / "val.txt").write_text("/f.jpg\n")
    return str(root / "list" / "val.txt")


@pytest.fixture(scope="module")
def frame_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    return [tuning.tusimple_set(_tusimple_set(root / "tusimple")),
            tuning.culane_set(_culane_set(root / "culane"))]


def _predictor(**settings):
    return Predictor(TwoLaneNetwork(right_lane_logit=RIGHT_LANE_LOGIT), min_pixels=10,
                     settings=LANE_SETTINGS.replace(lane_model="polynomial", **settings))


def test_a_threshold_that_loses_a_lane_on_every_set_is_lowered(frame_sets):
    # At min_confidence 0.8 the right lane (0.731) is dropped: half the lanes on both sets.
    found = tuning.tune(_predictor(min_confidence=0.8), frame_sets,
                        grid={"min_confidence": (0.5, 0.7, 0.8)})
    assert [result["score"] for result in found["base_results"]] == [pytest.approx(2 / 3)] * 2
    assert [result["score"] for result in found["chosen_results"]] == [1.0, 1.0]
    # 0.5 and 0.7 tie at 1.0 on both sets: either is a change of one setting; 0.8 is last.
    assert found["chosen"].min_confidence in (0.5, 0.7)
    assert found["ranked"][-1][0].min_confidence == 0.8
    assert found["chosen_results"][1]["tp"] == 2 and found["chosen_results"][1]["fp"] == 0


def test_settings_are_kept_when_no_candidate_does_better_on_every_set(frame_sets):
    base = _predictor(min_confidence=0.5)
    found = tuning.tune(base, frame_sets, grid={"min_confidence": (0.5, 0.7, 0.8),
                                                "lane_top_trim": (0.0, 0.5)})
    assert found["chosen"] == base.settings  # ties go to the fewest changes: none


def test_the_worst_set_decides(frame_sets, monkeypatch):
    # A made-up metric: setting A is best on set 0 and poor on set 1, B good on both.
    scores = {(0, 0.5): 0.99, (1, 0.5): 0.40, (0, 0.7): 0.90, (1, 0.7): 0.85}

    def score(self, predictor, settings):
        return {"score": scores[(frame_sets.index(self.frame_set), settings.min_confidence)]}

    monkeypatch.setattr(tuning._Outputs, "score", score)
    found = tuning.tune(_predictor(min_confidence=0.5), frame_sets,
                        grid={"min_confidence": (0.5, 0.7)})
    assert found["chosen"].min_confidence == 0.7
    assert [item[2] for item in found["ranked"]] == [0.85, 0.40]


def test_the_command_writes_config_only_without_dry_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tuning, "DEFAULT_GRID", {"min_confidence": (0.5, 0.8)})
    folder = tmp_path / "model"
    folder.mkdir()
    predictor = _predictor(min_confidence=0.8)
    monkeypatch.setattr("enet_discrim.predictor.Predictor", lambda modeldir: predictor)
    (folder / "config.json").write_text(json.dumps(predictor.settings.to_dict()))
    labels = _tusimple_set(tmp_path / "tusimple")
    before = (folder / "config.json").read_text()
    assert tune_cli.main(["--modeldir", str(folder), "--tusimple", labels, "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "Would set min_confidence=0.5" in out and "now:    accuracy" in out
    assert (folder / "config.json").read_text() == before
    assert tune_cli.main(["--modeldir", str(folder), "--tusimple", labels]) == 0
    assert json.loads((folder / "config.json").read_text())["min_confidence"] == 0.5
    assert tune_cli.main(["--modeldir", str(folder)]) == 2
    assert capsys.readouterr().err.endswith("give at least one labelled frame set: --tusimple "
                                            "LABELS or --culane LIST\n")


def test_frame_sets_name_bad_lines(tmp_path):
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "val.txt").write_text("/../outside.jpg\n")
    with pytest.raises(ValueError, match=r"val.txt:1: frame '../outside.jpg' resolves outside"):
        tuning.culane_set(str(tmp_path / "list" / "val.txt"))
    (tmp_path / "labels.json").write_text("not json\n")
    with pytest.raises(ValueError, match=r"labels.json:1: the label line is not valid JSON"):
        tuning.tusimple_set(str(tmp_path / "labels.json"))
