import dataclasses
import json
import os
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from enet_discrim import atomic, batch_inference, frame_pipeline, lanes, model_dir, visualization
from enet_discrim.evaluation import culane as culane_metric
from enet_discrim.formats import culane as culane_format
from enet_discrim.formats.tusimple import H_SAMPLES
from enet_discrim.model import ENet
from enet_discrim.predictor import Predictor, load_config, read_rgb
from enet_discrim.training import TrainConfig, save_model
from tests.lane_network import HEIGHT, LANE_SETTINGS, WIDTH, TwoLaneNetwork
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUSIMPLE_INFO = {"num_classes": 2, "class_names": ["background", "lane"], "ignore_label": 255}


@pytest.fixture(scope="module")
def modeldir(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("model")
    model = ENet(num_classes=2, embedding_dim=4)
    model.build((None, HEIGHT, WIDTH, 3))
    save_model(model, TrainConfig(outdir=str(outdir), height=HEIGHT, width=WIDTH), TUSIMPLE_INFO)
    return str(outdir)


@pytest.fixture(scope="module")
def two_lane_predictor():
    """A lane Predictor on `TwoLaneNetwork` with InferenceSettings' defaults."""
    return Predictor(TwoLaneNetwork(), min_pixels=10, settings=LANE_SETTINGS)


def folder_with_config(folder, modeldir, config):
    """A model folder: `modeldir`'s model.keras (a link) and `config` as config.json."""
    folder.mkdir()
    os.symlink(os.path.join(modeldir, "model.keras"), folder / "model.keras")
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def write_frames(directory, sizes=((72, 128),)):
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (height, width) in enumerate(sizes):
        path = os.path.join(directory, f"frame{i}.jpg")
        cv2.imwrite(path, rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def test_missing_model_files_are_listed(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_config(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="missing model.keras and config.json"):
        load_config(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="missing model.keras"):
        load_config(str(tmp_path))


def test_read_rgb_converts_grey_and_rgba_and_names_bad_files(tmp_path):
    grey = np.full((5, 7), 200, np.uint8)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., 2] = 255  # red in OpenCV's BGRA order
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    assert read_rgb(str(tmp_path / "grey.png")).shape == (5, 7, 3)
    assert read_rgb(str(tmp_path / "rgba.png"))[0, 0].tolist() == [255, 0, 0]
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg: not a readable image"):
        read_rgb(str(tmp_path / "broken.jpg"))


def test_two_lanes_come_out_in_frame_coordinates(two_lane_predictor):
    frame = np.zeros((720, 1280, 3), np.uint8)
    prediction = two_lane_predictor.predict(frame)
    assert prediction.instances.shape == (HEIGHT, WIDTH)
    assert len(np.unique(prediction.instances[prediction.instances > 0])) == 2
    # Map pixel (r, c) covers frame rows [22.5 r, 22.5 (r + 1)) and columns [20 c, 20 (c + 1)):
    # each lane is frame rows 180-719 and 80 columns, 200-279 and 800-879.
    at_frame_size = prediction.instances_at_frame_size()
    assert at_frame_size.shape == (720, 1280)
    left_id, right_id = at_frame_size[719, 240], at_frame_size[719, 840]
    assert left_id > 0 and right_id > 0 and left_id != right_id
    expected = np.zeros((720, 1280), np.uint16)
    expected[180:, 200:280], expected[180:, 800:880] = left_id, right_id
    np.testing.assert_array_equal(at_frame_size, expected)
    # A lane's x is the mean of the frame columns it covers, 239.5 and 839.5, rounded to an
    # int (either neighbour); h_samples 160 and 170 lie above frame row 180, where the lanes start.
    assert len(prediction.lanes) == 2
    for lane, columns in zip(prediction.lanes, (np.arange(200, 280), np.arange(800, 880))):
        assert len(lane) == len(H_SAMPLES) == 56
        assert lane[:2] == [-2, -2]
        assert all(abs(x - columns.mean()) <= 0.5 for x in lane[2:]), lane
    assert set(prediction.timings_ms) == {"network", "clustering", "postprocessing"}
    assert prediction.h_samples == tuple(H_SAMPLES)
    # A frame of another height: TuSimple's rows at the same share of it, not 160..710.
    half = two_lane_predictor.predict(np.zeros((360, 640, 3), np.uint8))
    assert half.h_samples == tuple(range(80, 356, 5)) and len(half.lanes[0]) == 56


def test_pixels_below_min_confidence_are_not_clustered(modeldir):
    # Training writes the bandwidth from the margins: delta_d.
    config = load_config(modeldir)
    assert config["bandwidth"] == config["delta_d"] == 1.5
    # The right lane's probability is 1 / (1 + e^-1) = 0.731, the left lane's 0.993.
    network = TwoLaneNetwork(right_lane_logit=1.0)
    frame = np.zeros((720, 1280, 3), np.uint8)
    lanes_found = {min_confidence: Predictor(network, min_pixels=10, min_confidence=min_confidence,
                                             settings=LANE_SETTINGS).predict(frame).lanes
                   for min_confidence in (0.0, 0.72, 0.74)}
    assert len(lanes_found[0.0]) == 2
    assert lanes_found[0.72] == lanes_found[0.0]
    assert lanes_found[0.74] == lanes_found[0.0][:1]  # only the left lane
    with pytest.raises(ValueError, match="min_confidence"):
        Predictor(network, min_confidence=1.0, settings=LANE_SETTINGS)


def test_config_lane_top_trim_reaches_the_lane_fit(modeldir, tmp_path):
    # Training writes a quarter of the label line thickness (2 px at this width): 0.5 map rows.
    assert load_config(modeldir)["lane_top_trim"] == 0.5
    frame = np.zeros((720, 1280, 3), np.uint8)
    found = {}
    for trim in (0.0, 0.5, -0.5):
        folder = folder_with_config(tmp_path / f"trim{trim}", modeldir,
                                    {**load_config(modeldir), "lane_top_trim": trim})
        if trim < 0:
            with pytest.raises(ValueError, match=r"trim-0.5/config.json: lane_top_trim must be a number of map rows in \[0, 4096\]"):
                Predictor(folder)
            continue
        predictor = Predictor(TwoLaneNetwork(), min_pixels=10, settings=model_dir.load_settings(folder))
        found[trim] = predictor.predict(frame).lanes
    # The lanes start at map row 8, upper edge 7.5; frame rows 180, 190, 200 lie at map 7.52, 7.97
    # and 8.41 (22.5 frame rows per map row), so trimming 0.5 drops the first two.
    row_180 = 2
    assert all(lane[row_180] != -2 for lane in found[0.0])
    assert all(lane[row_180:row_180 + 2] == [-2, -2] for lane in found[0.5])
    assert [lane[row_180 + 2:] for lane in found[0.5]] == [lane[row_180 + 2:] for lane in found[0.0]]


def test_config_lane_model_reaches_the_lane_fit(modeldir, tmp_path, monkeypatch):
    # Training writes the hyperbola.
    assert load_config(modeldir)["lane_model"] == "hyperbola"
    used = []
    fit_lanes = lanes.fit_lanes
    monkeypatch.setattr(lanes, "fit_lanes", lambda *args, **kwargs: used.append(kwargs["lane_model"])
                        or fit_lanes(*args, **kwargs))
    frame = np.zeros((720, 1280, 3), np.uint8)
    folders = {}
    for name, lane_model in (("absent", None), ("hyperbola", "hyperbola"), ("bad", "cubic")):
        config = {key: value for key, value in load_config(modeldir).items() if key != "lane_model"}
        if lane_model:
            config["lane_model"] = lane_model
        folders[name] = folder_with_config(tmp_path / name, modeldir, config)
        if lane_model == "cubic":
            with pytest.raises(ValueError, match=r"bad/config.json: lane_model must be one of "
                                                 r"polynomial, hyperbola, got 'cubic'"):
                Predictor(folders[name])
            continue
        predictor = Predictor(TwoLaneNetwork(), min_pixels=10,
                              settings=model_dir.load_settings(folders[name]))
        assert len(predictor.predict(frame).lanes) == 2
    # The argument (inference.py --lane_model) overrides the config.
    predictor = Predictor(TwoLaneNetwork(), min_pixels=10, lane_model="polynomial",
                          settings=model_dir.load_settings(folders["hyperbola"]))
    predictor.predict(frame)
    # A config without the key takes InferenceSettings' default, the hyperbola.
    assert used == ["hyperbola", "hyperbola", "polynomial"]
    with pytest.raises(ValueError, match=r"^lane_model must be one of polynomial, hyperbola, got 'spline'"):
        Predictor(folders["hyperbola"], lane_model="spline")


def test_frames_above_the_pixel_limit_are_skipped_and_named(two_lane_predictor, tmp_path):
    write_frames(tmp_path / "in", sizes=((72, 128), (90, 160)))
    jobs = batch_inference.list_jobs(str(tmp_path / "in"))
    summary = batch_inference.run(two_lane_predictor, jobs, str(tmp_path / "out"), max_pixels=72 * 128)
    assert summary["processed"] == 1
    assert summary["skipped"] == [f"{tmp_path / 'in' / 'frame1.jpg'}: 160 x 90 pixels (0.0144 megapixels), "
                                  "above the limit of 0.009216 megapixels"]
    assert os.listdir(tmp_path / "out") and not os.path.exists(tmp_path / "out" / "frame1_overlay.png")


def test_run_writes_pictures_instances_and_tusimple_lines(two_lane_predictor, tmp_path):
    paths = write_frames(tmp_path / "in", sizes=((72, 128), (90, 160)))
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    jobs = batch_inference.list_jobs(str(tmp_path / "in"))
    summary = batch_inference.run(two_lane_predictor, jobs, str(tmp_path / "out"), plots=True)
    assert summary["processed"] == 2
    assert len(summary["skipped"]) == 1 and "notes.txt: not a readable image" in summary["skipped"][0]
    for path, (height, width) in zip(paths, ((72, 128), (90, 160))):
        name = os.path.splitext(os.path.basename(path))[0]
        instances = cv2.imread(str(tmp_path / "out" / f"{name}_instances.png"), cv2.IMREAD_UNCHANGED)
        assert instances.dtype == np.uint16 and instances.shape == (height, width)
        assert set(np.unique(instances)) == {0, 1, 2}
        assert cv2.imread(str(tmp_path / "out" / f"{name}_overlay.png")).shape == (height, width, 3)
        assert os.path.exists(tmp_path / "out" / f"{name}_embedding.png")
    lines = [json.loads(line) for line in open(summary["predictions"])]
    assert [line["raw_file"] for line in lines] == ["frame0.jpg", "frame1.jpg"]
    # Each frame's lanes at TuSimple's rows scaled to its own height (160..710 of 720).
    assert [line["h_samples"] for line in lines] == [list(range(16, 72)),
                                                     [round(row / 8) for row in H_SAMPLES]]
    assert all(len(lane) == len(line["h_samples"]) for line in lines for lane in line["lanes"])
    assert all(isinstance(line["run_time"], (int, float)) and line["run_time"] > 0 for line in lines)


def test_an_outdir_that_is_the_indir_keeps_its_frames_and_skips_its_outputs(two_lane_predictor,
                                                                           tmp_path):
    folder = str(tmp_path / "in")
    write_frames(folder, sizes=((72, 128), (72, 128)))
    jobs = batch_inference.list_jobs(folder, exclude=[folder])
    assert [job.raw_file for job in jobs] == ["frame0.jpg", "frame1.jpg"]
    batch_inference.run(two_lane_predictor, jobs, folder, output_format="culane")
    assert os.path.exists(os.path.join(folder, "frame0_overlay.png"))
    again = batch_inference.list_jobs(folder, exclude=[folder])  # the outputs are no frames
    assert [job.raw_file for job in again] == ["frame0.jpg", "frame1.jpg"]


def test_links_that_leave_the_indir_are_not_followed(tmp_path, caplog):
    outside = tmp_path / "etc"
    write_frames(str(outside), sizes=((8, 8), (8, 8)))
    indir = tmp_path / "in"
    write_frames(str(indir), sizes=((8, 8),))
    os.symlink(outside, indir / "etc_link")  # a folder outside
    os.symlink(outside / "frame1.jpg", indir / "x.jpg")  # a file outside
    (indir / "sub").mkdir()
    os.symlink(indir / "frame0.jpg", indir / "sub" / "again.jpg")  # a link inside: followed
    jobs = batch_inference.list_jobs(str(indir))
    assert [job.raw_file for job in jobs] == ["frame0.jpg", os.path.join("sub", "again.jpg")]
    assert "2 link(s) under --indir" in caplog.text and "lead outside it" in caplog.text


def test_the_network_is_traced_before_the_first_frame(modeldir, monkeypatch):
    # Otherwise frame 1's run_time carries the graph building and TuSimple scores it as a miss.
    traced = []
    original_call = ENet.call

    def counting_call(self, *args, **kwargs):
        traced.append(1)
        return original_call(self, *args, **kwargs)

    monkeypatch.setattr(ENet, "call", counting_call)
    predictor = Predictor(modeldir)
    assert traced, "the predictor did not trace the network when it was built"
    traced.clear()
    for size in ((72, 128), (720, 1280)):
        predictor.predict(np.zeros(size + (3,), np.uint8))
    assert not traced, "predicting traced the network again"


def test_tusimple_tasks_are_predicted_in_order_at_their_own_rows(two_lane_predictor, tmp_path):
    root = tmp_path / "root"
    for clip in ("b", "a"):
        write_frames(root / "clips" / clip, sizes=((720, 1280),))
    tasks = tmp_path / "test_tasks.json"
    rows = [list(range(200, 700, 20)), list(range(160, 711, 10))]
    tasks.write_text(
        "\n".join(json.dumps({"raw_file": f"clips/{clip}/frame0.jpg", "h_samples": h, "lanes": []})
                  for clip, h in zip(("b", "a"), rows)) + "\n"
    )
    jobs = batch_inference.list_jobs(str(root), str(tasks))
    summary = batch_inference.run(two_lane_predictor, jobs, str(tmp_path / "out"))
    lines = [json.loads(line) for line in open(summary["predictions"])]
    assert [line["raw_file"] for line in lines] == ["clips/b/frame0.jpg", "clips/a/frame0.jpg"]
    assert [len(line["lanes"][0]) for line in lines] == [len(rows[0]), len(rows[1])]
    assert os.path.exists(tmp_path / "out" / "clips_b_frame0_overlay.png")


def _culane_lanes_expected(frame_height, frame_width):
    """TwoLaneNetwork's lanes in a frame's pixels, as CULane's files list them: x the mean of the
    frame columns each covers (map columns 10-13 and 40-43), a point every 10 rows from the
    frame's bottom edge up to the last row whose centre lies inside map row 8, where they start."""
    scale_x, scale_y = frame_width / WIDTH, frame_height / HEIGHT
    rows = [row for row in culane_format.sample_rows(frame_height)
            if (row + 0.5) / scale_y - 0.5 >= 7.5]
    return [[((column + 0.5) * scale_x - 0.5, row) for row in rows] for column in (11.5, 41.5)]


@pytest.mark.parametrize("size", [(590, 1640), (200, 300)])
def test_culane_format_writes_lane_files_in_the_frames_layout(tmp_path, size):
    # The polynomial lane model: the hyperbola's horizon may fall inside the lanes' top map row,
    # and these vertical lanes leave it free to.
    predictor = Predictor(TwoLaneNetwork(), min_pixels=10,
                          settings=LANE_SETTINGS.replace(lane_model="polynomial"))
    frame_height, frame_width = size
    indir = tmp_path / "in" / "driver_1" / "c.MP4"
    indir.mkdir(parents=True)
    cv2.imwrite(str(indir / "00000.jpg"), np.zeros((frame_height, frame_width, 3), np.uint8))
    jobs = batch_inference.list_jobs(str(tmp_path / "in"))
    summary = batch_inference.run(predictor, jobs, str(tmp_path / "out"), output_format="culane",
                                  save=())
    assert summary["results_dir"] == str(tmp_path / "out" / "culane_results")
    written = tmp_path / "out" / "culane_results" / "driver_1" / "c.MP4" / "00000.lines.txt"
    lanes_found = culane_format.read_lanes(str(written))
    expected = _culane_lanes_expected(frame_height, frame_width)
    assert len(lanes_found) == 2
    for lane, wanted in zip(lanes_found, expected):
        assert [y for _, y in lane] == [y for _, y in wanted]  # bottom edge first, every 10 rows
        assert lane[0][1] == frame_height
        assert all(abs(x - wanted_x) <= 0.5 for (x, _), (wanted_x, _) in zip(lane, wanted))
    # The official metric finds both lanes, drawn where they are.
    labels = [[(round(x), y) for x, y in lane] for lane in expected]
    counts, _ = culane_metric.count_frame(labels, lanes_found)
    assert (counts.tp, counts.fp, counts.fn) == (2, 0, 0)


def test_culane_lists_name_the_frames_and_their_result_files(two_lane_predictor, tmp_path):
    root = tmp_path / "culane"
    for frame in ("d/b.MP4/00030.jpg", "d/a.MP4/00000.jpg", "d/a.MP4/00060.jpg"):
        (root / frame).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / frame), np.zeros((59, 164, 3), np.uint8))
    (root / "list").mkdir()
    (root / "list" / "test.txt").write_text("/d/b.MP4/00030.jpg\n/d/a.MP4/00000.jpg\n")
    jobs = batch_inference.list_jobs(str(root), culane_list="list/test.txt")
    assert [job.raw_file for job in jobs] == ["d/b.MP4/00030.jpg", "d/a.MP4/00000.jpg"]
    batch_inference.run(two_lane_predictor, jobs, str(tmp_path / "out"), output_format="culane",
                        save=())
    results = tmp_path / "out" / "culane_results" / "d"
    assert sorted(str(path.relative_to(results)) for path in results.rglob("*.lines.txt")) == [
        "a.MP4/00000.lines.txt", "b.MP4/00030.lines.txt"]
    (root / "list" / "escape.txt").write_text("/d/a.MP4/00000.jpg\n/../outside.jpg\n")
    with pytest.raises(ValueError, match=r"escape.txt:2: frame '/../outside.jpg' resolves outside "
                                         r"--indir .*, refused$"):
        batch_inference.list_jobs(str(root), culane_list=str(root / "list" / "escape.txt"))
    with pytest.raises(ValueError, match="--tusimple_tasks and --culane_list both name the frames"):
        batch_inference.list_jobs(str(root), "tasks.json", culane_list="list/test.txt")
    with pytest.raises(ValueError, match=r"--culane_list 'list/nope.txt' does not exist"):
        batch_inference.list_jobs(str(root), culane_list="list/nope.txt")
    cv2.imwrite(str(root / "d" / "a.MP4" / "00000.png"), np.zeros((59, 164, 3), np.uint8))
    with pytest.raises(ValueError, match="several frames would write the CULane results file "
                                         "'a.MP4/00000.lines.txt'"):
        batch_inference.run(two_lane_predictor, batch_inference.list_jobs(str(root / "d")),
                            str(tmp_path / "out2"), output_format="culane", save=())


@pytest.mark.slow
def test_cli_runs_the_saved_model_and_fails_only_when_nothing_was_processed(modeldir, tmp_path):
    write_frames(tmp_path / "in")
    environment = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, os.path.join(REPO, "inference.py"), f"--modeldir={modeldir}"]
    done = subprocess.run(command + [f"--indir={tmp_path / 'in'}", f"--outdir={tmp_path / 'out'}"],
                          env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Processed 1 frame(s), skipped 0." in done.stdout and "network" in done.stdout
    assert os.path.exists(tmp_path / "out" / "frame0_overlay.png")
    assert os.path.exists(tmp_path / "out" / "predictions.json")

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"garbage")
    failed = subprocess.run(command + [f"--indir={tmp_path / 'bad'}", f"--outdir={tmp_path / 'out2'}"],
                            env=environment, capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0
    assert "x.jpg: not a readable image" in failed.stdout + failed.stderr
    missing = subprocess.run(command[:2] + [f"--modeldir={tmp_path}"], env=environment,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode != 0 and "missing model.keras and config.json" in missing.stderr


# --- Reliability (issue 15).

def test_output_names_stay_readable_and_unique():
    assert batch_inference.output_names(["clips/a/20.jpg", "1.jpg"]) == ["clips_a_20", "1"]
    # Same stem, other extension: the extension tells them apart.
    assert batch_inference.output_names(["1.jpg", "1.png", "2.jpg"]) == ["1_jpg", "1_png", "2"]
    # "/" -> "_" makes these equal, extension and all: numbered in frame order.
    assert batch_inference.output_names(["clips/a.jpg", "clips_a.jpg"]) == ["clips_a_jpg",
                                                                            "clips_a_jpg_2"]
    # A number never takes another frame's own name.
    names = batch_inference.output_names(["b/c.jpg", "b_c.jpg", "b_c_jpg_2.png"])
    assert names == ["b_c_jpg", "b_c_jpg_3", "b_c_jpg_2"]
    paths = ["x.jpg", "x.png", "x", "x_jpg.jpg", "y/x.jpg", "y_x.jpg", "y_x_jpg.png", "x.jpg"]
    assert len(set(batch_inference.output_names(paths))) == len(paths)


def test_frames_sharing_a_stem_keep_their_own_outputs(two_lane_predictor, tmp_path):
    # Issue 15 item 9: 1.jpg and 1.png both wrote 1_*.png.
    indir = tmp_path / "in"
    indir.mkdir()
    cv2.imwrite(str(indir / "1.jpg"), np.zeros((72, 128, 3), np.uint8))
    cv2.imwrite(str(indir / "1.png"), np.zeros((90, 160, 3), np.uint8))
    summary = batch_inference.run(two_lane_predictor, batch_inference.list_jobs(str(indir)),
                                  str(tmp_path / "out"))
    assert summary["processed"] == 2
    assert cv2.imread(str(tmp_path / "out" / "1_jpg_overlay.png")).shape == (72, 128, 3)
    assert cv2.imread(str(tmp_path / "out" / "1_png_overlay.png")).shape == (90, 160, 3)


def test_tasks_whose_names_clash_keep_their_own_outputs(two_lane_predictor, tmp_path):
    # Issue 15 item 9: raw_files clips/a.jpg and clips_a.jpg both wrote clips_a_*.png.
    root = tmp_path / "root"
    (root / "clips").mkdir(parents=True)
    cv2.imwrite(str(root / "clips" / "a.jpg"), np.zeros((72, 128, 3), np.uint8))
    cv2.imwrite(str(root / "clips_a.jpg"), np.zeros((90, 160, 3), np.uint8))
    tasks = tmp_path / "tasks.json"
    tasks.write_text("".join(json.dumps({"raw_file": raw_file, "h_samples": [40, 50]}) + "\n"
                             for raw_file in ("clips/a.jpg", "clips_a.jpg")))
    jobs = batch_inference.list_jobs(str(root), str(tasks))
    batch_inference.run(two_lane_predictor, jobs, str(tmp_path / "out"))
    assert cv2.imread(str(tmp_path / "out" / "clips_a_jpg_overlay.png")).shape == (72, 128, 3)
    assert cv2.imread(str(tmp_path / "out" / "clips_a_jpg_2_overlay.png")).shape == (90, 160, 3)
    # Jobs built by hand must not share a name either.
    clash = [jobs[0], dataclasses.replace(jobs[1], name=jobs[0].name)]
    with pytest.raises(ValueError,
                       match="several frames would write the outputs named 'clips_a_jpg'"):
        batch_inference.run(two_lane_predictor, clash, str(tmp_path / "out2"))


def _tasks(tmp_path, *records):
    path = tmp_path / "tasks.json"
    path.write_text("".join((record if isinstance(record, str) else json.dumps(record)) + "\n"
                            for record in records))
    return str(path)


@pytest.mark.parametrize("raw_file", ["../outside.jpg", "ABSOLUTE", "link.jpg"])
def test_task_frames_outside_indir_are_refused(tmp_path, raw_file):
    # Issue 15 item 10: inference read frames the converter refuses.
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside.jpg"
    cv2.imwrite(str(outside), np.zeros((8, 8, 3), np.uint8))
    os.symlink(outside, root / "link.jpg")
    cv2.imwrite(str(root / "inside.jpg"), np.zeros((8, 8, 3), np.uint8))
    raw_file = str(outside) if raw_file == "ABSOLUTE" else raw_file
    tasks = _tasks(tmp_path, {"raw_file": "inside.jpg", "h_samples": [1]},
                   {"raw_file": raw_file, "h_samples": [1]})
    with pytest.raises(ValueError) as error:
        batch_inference.list_jobs(str(root), tasks)
    assert str(error.value) == (f"{tasks}:2: raw_file {raw_file!r} resolves outside --indir "
                                f"{str(root)!r}, refused")
    # An absolute path inside --indir is fine, as in the converter.
    tasks = _tasks(tmp_path, {"raw_file": str(root / "inside.jpg"), "h_samples": [1]})
    assert [job.name for job in batch_inference.list_jobs(str(root), tasks)] == ["inside"]


def test_a_missing_tasks_file_is_a_one_line_error(tmp_path):
    # Issue 15 item 14: a FileNotFoundError traceback.
    with pytest.raises(ValueError,
                       match=r"^--tusimple_tasks '.*nope.json' does not exist or is not a file$"):
        batch_inference.list_jobs(str(tmp_path), str(tmp_path / "nope.json"))


@pytest.mark.parametrize("record, reason", [
    ({"raw_file": "a.jpg", "h_samples": [160, "x"]}, 'h_samples[1] is not a number: "x"'),
    ({"raw_file": "a.jpg", "h_samples": 5}, "h_samples must be a non-empty list of rows, got 5"),
    ({"raw_file": "a.jpg", "h_samples": [160, float("nan")]},
     "h_samples[1] is not a row of the frame: NaN"),
    ({"raw_file": "a.jpg", "h_samples": [170, 160]},
     "h_samples must be strictly increasing, but h_samples[1] = 160 follows 170"),
    ({"raw_file": 7, "h_samples": [160]}, "raw_file must be a non-empty string"),
    ('"just a string"', "not a JSON object"),
])
def test_bad_task_lines_name_the_file_and_line(tmp_path, record, reason):
    # Issue 15 item 18: bad h_samples raised an error naming neither file nor line.
    tasks = _tasks(tmp_path, {"raw_file": "b.jpg", "h_samples": [160]}, record)
    with pytest.raises(ValueError) as error:
        batch_inference.list_jobs(str(tmp_path), tasks)
    assert str(error.value) == f"{tasks}:2: {reason}"


@pytest.mark.slow
def test_cli_missing_tasks_file_exits_with_one_line(modeldir, tmp_path):
    environment = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, os.path.join(REPO, "inference.py"),
                           f"--modeldir={modeldir}", f"--indir={tmp_path}",
                           f"--tusimple_tasks={tmp_path / 'nope.json'}",
                           f"--outdir={tmp_path / 'out'}"],
                          env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (f"error: --tusimple_tasks "
                                            f"'{tmp_path / 'nope.json'}' does not exist or is not a file")


# --- Pipelined loop and --save (issue 17 item 2).

def _outputs(folder):
    """{file name: bytes} of a run's outputs, predictions.json without its run_time values."""
    found = {}
    for name in sorted(os.listdir(folder)):
        content = (folder / name).read_bytes()
        if name == batch_inference.PREDICTIONS_FILE:
            content = [{**json.loads(line), "run_time": None} for line in content.splitlines()]
        found[name] = content
    return found


def test_pipelined_run_matches_the_sequential_one(two_lane_predictor, tmp_path):
    # Widths differ so that each frame's lanes (in frame pixels) and pictures differ.
    sizes = ((720, 320), (720, 480), (720, 640), (720, 560), (720, 800), (720, 400))
    write_frames(tmp_path / "in", sizes=sizes)
    (tmp_path / "in" / "frame3.jpg").write_bytes(b"not a jpeg")  # skipped, in both runs
    jobs = batch_inference.list_jobs(str(tmp_path / "in"))
    summaries = {}
    for pipelined in (False, True):
        summaries[pipelined] = batch_inference.run(two_lane_predictor, jobs,
                                                   str(tmp_path / f"out_{pipelined}"),
                                                   plots=True, pipelined=pipelined)
    assert summaries[True]["processed"] == summaries[False]["processed"] == 5
    assert summaries[True]["skipped"] == summaries[False]["skipped"] == [
        f"{tmp_path / 'in' / 'frame3.jpg'}: not a readable image"]
    sequential, pipelined = _outputs(tmp_path / "out_False"), _outputs(tmp_path / "out_True")
    assert sequential == pipelined
    lines = sequential[batch_inference.PREDICTIONS_FILE]
    assert [line["raw_file"] for line in lines] == [f"frame{i}.jpg" for i in (0, 1, 2, 4, 5)]
    # The lanes lie at map columns 10-13 and 40-43 of 64, centred on 12 / 64 and 42 / 64 of the
    # width; frame pixel x covers [x, x + 1), so the centre c is pixel c - 0.5, rounded to an int.
    for line, width in zip(lines, (320, 480, 640, 800, 400)):
        expected = [12 / 64 * width - 0.5, 42 / 64 * width - 0.5]
        assert [max(lane) for lane in line["lanes"]] == pytest.approx(expected, abs=0.5)
    assert len(sequential) == 1 + 5 * 3  # predictions.json, overlay, instances, embedding


def test_overlays_are_written_exactly(two_lane_predictor, tmp_path):
    # Stored rather than compressed (a lower level), the overlay PNG is still the overlay.
    write_frames(tmp_path / "in")
    batch_inference.run(two_lane_predictor, batch_inference.list_jobs(str(tmp_path / "in")),
                        str(tmp_path / "out"))
    frame = read_rgb(str(tmp_path / "in" / "frame0.jpg"))
    expected = two_lane_predictor.predict(frame)
    written = cv2.imread(str(tmp_path / "out" / "frame0_overlay.png"))
    np.testing.assert_array_equal(written[..., ::-1],
                                  visualization.overlay_instances(frame, expected.instances))
    instances = cv2.imread(str(tmp_path / "out" / "frame0_instances.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(instances, expected.instances_at_frame_size())


@pytest.mark.parametrize("save, suffixes", [
    (["overlay"], {"_overlay.png"}),
    (["instances"], {"_instances.png"}),
    ([], set()),
    (["instances", "overlay"], {"_overlay.png", "_instances.png"}),
])
def test_save_picks_the_pictures(two_lane_predictor, tmp_path, save, suffixes):
    write_frames(tmp_path / "in", sizes=((72, 128), (90, 160)))
    summary = batch_inference.run(two_lane_predictor, batch_inference.list_jobs(str(tmp_path / "in")),
                                  str(tmp_path / "out"), save=save)
    assert summary["processed"] == 2
    expected = {f"frame{i}{suffix}" for i in (0, 1) for suffix in suffixes}
    assert set(os.listdir(tmp_path / "out")) == expected | {batch_inference.PREDICTIONS_FILE}


def test_an_unknown_picture_kind_is_refused_before_any_work(two_lane_predictor, tmp_path):
    write_frames(tmp_path / "in")
    with pytest.raises(ValueError, match=r"^unknown picture kind 'embedding' to save: choose from "
                                         r"overlay, instances"):
        batch_inference.run(two_lane_predictor, batch_inference.list_jobs(str(tmp_path / "in")),
                            str(tmp_path / "out"), save=["overlay", "embedding"])
    assert not os.path.exists(tmp_path / "out")


def _pipeline_threads():
    return [thread.name for thread in threading.enumerate()
            if thread.name.startswith(("frame-reader", "predict", "write"))]


def test_a_failing_writer_stops_the_run_and_names_the_file(two_lane_predictor, tmp_path):
    write_frames(tmp_path / "in", sizes=((72, 128),) * 12)
    (tmp_path / "out" / "frame2_overlay.png").mkdir(parents=True)  # in the way of a picture
    outcome = {}

    def run():
        try:
            batch_inference.run(two_lane_predictor, batch_inference.list_jobs(str(tmp_path / "in")),
                                str(tmp_path / "out"))
        except ValueError as error:
            outcome["error"] = str(error)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=120)  # a hang guard: the run itself takes well under a second
    assert not runner.is_alive(), "the run hangs after a writer failed"
    assert outcome["error"] == f"{tmp_path / 'out' / 'frame2_overlay.png'}: cannot write (Is a directory)"
    assert _pipeline_threads() == []
    left = os.listdir(tmp_path / "out")
    assert not [name for name in left if name.startswith(atomic.TEMP_PREFIX)]
    assert batch_inference.PREDICTIONS_FILE not in left
    assert "frame0_overlay.png" in left  # written before the failure, kept


class _Prediction:
    def __init__(self, value):
        self.value, self.timings_ms = value, {"network": 1.0, "clustering": 2.0, "postprocessing": 3.0}


def _decoded(count, fail_at=None, closed=None):
    try:
        for index in range(count):
            if index == fail_at:
                raise RuntimeError(f"frame {index} broke")
            yield frame_pipeline.Decoded(index, index, 0.5)
    finally:
        if closed is not None:
            closed.append(True)


@pytest.mark.parametrize("pipelined, predict_threads", [(False, 1), (True, 1), (True, 2)])
def test_run_stream_keeps_the_stream_order(pipelined, predict_threads):
    rng = np.random.default_rng(0)
    delays = rng.uniform(0, 0.004, size=(40, 3))

    def predict(image, index):
        time.sleep(delays[index, 0])
        return _Prediction(image * 10)

    seen, written, in_order = [], set(), []
    stats = frame_pipeline.run_stream(
        _decoded(40), predict,
        write=lambda predicted: (time.sleep(delays[predicted.item, 1]), written.add(predicted.item)),
        write_in_order=lambda predicted: (time.sleep(delays[predicted.item, 2]),
                                          in_order.append(predicted.prediction.value)),
        on_predicted=lambda predicted: seen.append((predicted.index, predicted.item)),
        pipelined=pipelined, predict_threads=predict_threads, write_threads=3, max_pending=4)
    assert seen == [(index, index) for index in range(40)]
    assert in_order == [10 * index for index in range(40)]
    assert written == set(range(40))
    assert stats.processed == 40
    assert stats.stage_ms["decode"] == pytest.approx(40 * 0.5)
    assert stats.stage_ms["postprocessing"] == pytest.approx(40 * 3.0)
    assert _pipeline_threads() == []


@pytest.mark.parametrize("pipelined", [False, True])
def test_run_stream_raises_the_first_failure_and_stops(pipelined):
    closed = []
    with pytest.raises(RuntimeError, match="frame 5 broke"):
        frame_pipeline.run_stream(_decoded(10, fail_at=5, closed=closed),
                                  lambda image, index: _Prediction(image), pipelined=pipelined)
    assert closed == [True]

    def predict(image, index):
        if index == 3:
            raise ArithmeticError("network failed on frame 3")
        return _Prediction(image)

    closed, predicted = [], []
    with pytest.raises(ArithmeticError, match="frame 3"):
        frame_pipeline.run_stream(_decoded(1000, closed=closed), predict, pipelined=pipelined,
                                  on_predicted=lambda frame: predicted.append(frame.item))
    assert predicted == [0, 1, 2]
    assert closed == [True]  # the stream was stopped, not read to its end
    assert _pipeline_threads() == []


def test_format_summary_gives_the_wall_clock_rate():
    summary = {"processed": 10, "skipped": [], "wall_s": 2.0, "frames_per_second": 5.0,
               "timings_ms": {**dict.fromkeys(batch_inference.STAGES, 1.0), "total": 5.0}}
    text = batch_inference.format_summary(summary)
    assert "Wall clock: 2.00 s, 5.0 frames per second (200.0 ms per frame)." in text
    assert "decode 1.0, network 1.0" in text
