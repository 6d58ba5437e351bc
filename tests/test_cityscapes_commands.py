"""Cityscapes from the command line (issue 16): frames listed recursively under --indir with the
names the official evaluator looks for, and the README's Cityscapes commands run as written on a
folder in Cityscapes' layout."""
import os
import subprocess
import sys
import types

import cv2
import numpy as np
import pytest

from enet_discrim import batch_inference


def _touch_frame(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), np.zeros((4, 8, 3), np.uint8))


def test_indir_is_searched_recursively_keeping_cityscapes_stems(tmp_path):
    # Issue 16 item 1: frames were listed only directly inside --indir.
    indir = tmp_path / "val"
    for relative in ("lindau/lindau_000000_000019_leftImg8bit.png",
                     "frankfurt/frankfurt_000001_000019_leftImg8bit.png",
                     "a/20.jpg", "b/20.jpg", "top.png", ".cache/hidden.png", "c/.hidden.png"):
        _touch_frame(indir / relative)
    (indir / "a" / "labels.json").write_text("{}")
    jobs = batch_inference.list_jobs(str(indir))
    assert [(os.path.relpath(job.path, indir), job.name) for job in jobs] == [
        ("a/20.jpg", "a_20"),
        ("b/20.jpg", "b_20"),
        ("frankfurt/frankfurt_000001_000019_leftImg8bit.png",
         "frankfurt_000001_000019_leftImg8bit"),
        ("lindau/lindau_000000_000019_leftImg8bit.png", "lindau_000000_000019_leftImg8bit"),
        ("top.png", "top"),
    ]
    # A TuSimple line's raw_file is the path relative to --indir.
    assert jobs[0].raw_file == "a/20.jpg"


def test_a_cityscapes_stem_found_twice_falls_back_to_the_relative_path(tmp_path):
    for relative in ("val/ulm/ulm_000000_000019_leftImg8bit.png",
                     "copy/ulm_000000_000019_leftImg8bit.png"):
        _touch_frame(tmp_path / relative)
    names = [job.name for job in batch_inference.list_jobs(str(tmp_path))]
    assert names == ["copy_ulm_000000_000019_leftImg8bit",
                     "val_ulm_ulm_000000_000019_leftImg8bit"]
    assert batch_inference.output_names(["x/aachen_000000_000001_leftImg8bit.png", "x/7.png"]) == [
        "aachen_000000_000001_leftImg8bit", "x_7"]


def test_outdir_inside_indir_and_folder_loops_are_not_searched(tmp_path):
    indir = tmp_path / "in"
    _touch_frame(indir / "city" / "city_000000_000019_leftImg8bit.png")
    _touch_frame(indir / "results" / "city_000000_000019_leftImg8bit_overlay.png")
    os.symlink(indir, indir / "city" / "loop")  # followed once, not forever
    os.symlink(indir / "city", indir / "alias")  # the same folder again under another name
    jobs = batch_inference.list_jobs(str(indir), exclude=[str(indir / "results")])
    assert [job.name for job in jobs] == ["city_000000_000019_leftImg8bit"]
    assert len(batch_inference.list_jobs(str(indir))) == 2


def test_an_empty_tree_is_a_one_line_error(tmp_path):
    (tmp_path / "city" / "empty").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"^--indir '.*' holds no files$"):
        batch_inference.list_jobs(str(tmp_path))


def test_cityscapes_results_need_a_cityscapes_name_and_say_which_frame(tmp_path):
    prediction = types.SimpleNamespace(
        semantic_probabilities=np.full((2, 2, 19), 1 / 19, np.float32),
        instances=np.array([[1, 0], [0, 0]], np.int32), instance_classes=np.array([13]),
        frame_size=(4, 4))
    job = batch_inference.Job(str(tmp_path / "in" / "a" / "7.png"), "a_7", "a/7.png")
    with pytest.raises(ValueError, match=r"in/a/7.png: --format cityscapes needs frames named "
                                         r"like Cityscapes ones .* this one would be 'a_7'$"):
        batch_inference._write_cityscapes(str(tmp_path / "results"), job, prediction)
    assert not (tmp_path / "results").exists()
    job = batch_inference.Job("x.png", "bonn_000000_000019_leftImg8bit", "x.png")
    batch_inference._write_cityscapes(str(tmp_path / "results"), job, prediction)
    # Where the official evaluator's getPrediction looks: <city>_<seq>_<frame>*.txt.
    assert sorted(os.listdir(tmp_path / "results")) == ["bonn_000000_000019_leftImg8bit.txt",
                                                        "masks"]
    mask = cv2.imread(str(tmp_path / "results/masks/bonn_000000_000019_leftImg8bit_001.png"),
                      cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask, np.kron([[1, 0], [0, 0]], np.ones((2, 2))) * 255)


# --- The README's Cityscapes commands, as written, on a folder in Cityscapes' layout.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CITIES = ("frankfurt", "lindau")
THING_CLASSES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")


def _readme_cityscapes_commands():
    """The inference and evaluation lines of the README's Cityscapes code block, in order."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as readme:
        section = readme.read().split("## Instance segmentation on Cityscapes", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines()
            if line.startswith(("python inference.py", "python -m enet_discrim.evaluation"))]


def _two_city_dataset(root):
    """`root`/cityscapes with val frames 64 x 128 in two cities (frankfurt, lindau), two each:
    the synthetic generator's frames, renamed into those cities as Cityscapes names them."""
    from enet_discrim.data.synthetic import cityscapes as synthetic

    synthetic.generate(str(root / "synthetic"), count=4, seed=0, split="val", width=128,
                       height=64, log_every=0)
    images = sorted((root / "synthetic" / "leftImg8bit" / "val").glob("*/*_leftImg8bit.png"))
    assert len(images) == 4
    for index, image in enumerate(images):
        old_stem = image.name[:-len("_leftImg8bit.png")]
        city = CITIES[index % 2]
        new_stem = f"{city}_{index // 2:06d}_000019"
        for path in (root / "synthetic").glob(f"*/val/*/{old_stem}_*.png"):
            kind = path.relative_to(root / "synthetic").parts[0]  # leftImg8bit or gtFine
            target = root / "cityscapes" / kind / "val" / city / path.name.replace(old_stem,
                                                                                     new_stem)
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
    return root / "cityscapes"


def _cityscapes_model(folder):
    """An untrained 32 x 64 Cityscapes model folder (19 train ids, things 11..18)."""
    from enet_discrim import model_dir
    from enet_discrim.model import ENet

    model = ENet(num_classes=19, embedding_dim=4)
    model.build((None, 32, 64, 3))
    model_dir.save(str(folder), model, model_dir.InferenceSettings(
        dataset="cityscapes", height=32, width=64, num_classes=19, embedding_dim=4,
        thing_train_ids=tuple(range(11, 19))))


def _run_as_written(command, home):
    """Runs a README line in a shell from `home`, with ~ = `home` and this interpreter's python;
    only `inference.py` is given its folder, the checkout."""
    environment = {**os.environ, "HOME": str(home), "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3",
                   "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    command = command.replace("python inference.py", f"python {REPO}/inference.py")
    done = subprocess.run(["bash", "-c", command], cwd=home, env=environment, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
    return done.stdout


def _ap_table(lines):
    """The class names of an AP table in `lines` (asserting its header and average row)."""
    assert lines[0].split() == ["class", "AP", "AP50"]
    assert lines[-1].split()[0] == "average" and len(lines[-1].split()) == 3
    return [line.split()[0] for line in lines[1:-1]]


@pytest.mark.slow
def test_readme_cityscapes_commands_run_to_an_ap_table(tmp_path, capsys):
    # Issue 16 item 1: the README's commands failed on Cityscapes' layout (frames in city
    # folders; the evaluator wanted results for the whole split after one city was predicted).
    dataset = _two_city_dataset(tmp_path)
    _cityscapes_model(tmp_path / "cs_model")
    commands = _readme_cityscapes_commands()
    assert [command.split()[1] for command in commands] == [
        "inference.py", "-m", "inference.py", "-m"]
    assert "--indir ~/cityscapes/leftImg8bit/val/frankfurt " in commands[0]
    assert "--indir ~/cityscapes/leftImg8bit/val " in commands[2]
    results = tmp_path / "cs_results" / "cityscapes_results"
    arguments = ["--dataset", str(dataset), "--results", str(results)]

    # One city predicted: the result files carry the Cityscapes stems the evaluator looks for.
    _run_as_written(commands[0], tmp_path)
    assert sorted(os.listdir(results)) == ["frankfurt_000000_000019_leftImg8bit.txt",
                                           "frankfurt_000001_000019_leftImg8bit.txt", "masks"]
    assert (tmp_path / "cs_results" / "frankfurt_000001_000019_leftImg8bit_overlay.png").exists()
    # The whole split cannot be scored yet; the predicted frames, or frankfurt's, can.
    from enet_discrim.evaluation import cityscapes

    assert cityscapes.main(arguments) == 2
    assert capsys.readouterr().err.startswith(
        f"error: Found no prediction for ground truth {dataset}/gtFine/val/lindau/")
    lines = _run_as_written(commands[1], tmp_path).splitlines()
    assert "--only_predicted" in commands[1]
    assert lines[0] == "Scored the 2 predicted frames (of 4 in the whole val split)."
    assert _ap_table(lines[1:]) == list(THING_CLASSES)
    assert cityscapes.main(arguments + ["--cities", "frankfurt"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "Scored val cities frankfurt: 2 frames."

    # The whole split: --indir val holds the city folders.
    _run_as_written(commands[2], tmp_path)
    assert len([name for name in os.listdir(results) if name.endswith(".txt")]) == 4
    lines = _run_as_written(commands[3], tmp_path).splitlines()
    assert lines[0] == "Scored the whole val split: 4 frames."
    assert _ap_table(lines[1:]) == list(THING_CLASSES)
