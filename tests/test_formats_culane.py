"""CULane's files: lane files read as the official evaluator splits them, list files, rows."""
import pytest

from enet_discrim.formats import culane


def test_a_lane_line_is_x_y_pairs_and_a_blank_line_a_lane_without_points():
    assert culane.parse_lane_line("-14.0619 510 20.1439 500 ") == [(-14.0619, 510.0),
                                                                   (20.1439, 500.0)]
    assert culane.parse_lane_line("1e2 +3 .5 4. ") == [(100.0, 3.0), (0.5, 4.0)]
    assert culane.parse_lane_line("   ") == []


@pytest.mark.parametrize("line, reason", [
    ("1 2 3", "3 values: a lane is x y pairs"),
    ("1 nan", "value 2 is not a number: 'nan'"),
    ("inf 2", "value 1 is not a number: 'inf'"),
    ("1e999 2", "value 1 is not a finite number: '1e999'"),
    ("1_000 2", "value 1 is not a number: '1_000'"),
    ("0x10 2", "value 1 is not a number: '0x10'"),
    ("1,5 2", "value 1 is not a number: '1,5'"),
])
def test_bad_lane_lines_say_what_is_wrong(line, reason):
    with pytest.raises(ValueError, match=f"^{reason}"):
        culane.parse_lane_line(line)


def test_lane_files_split_at_newlines_only_and_name_the_bad_line(tmp_path):
    path = tmp_path / "f.lines.txt"
    # CRLF endings, a blank lane in the middle, and no extra lane after the final newline.
    path.write_bytes(b"1 590 2 580 \r\n\n3 590 4 580 \n")
    assert culane.read_lanes(str(path)) == [[(1, 590), (2, 580)], [], [(3, 590), (4, 580)]]
    path.write_bytes(b"1 590 2 580 \n3 590 4\n")
    with pytest.raises(culane.FileError, match=rf"^{path}:2: 3 values") as caught:
        culane.read_lanes(str(path))
    assert caught.value.location == f"{path}:2"
    path.write_bytes(b"1 590\n\xff 2\n")
    with pytest.raises(ValueError, match=rf"^{path}:2: the lane line is not UTF-8 text"):
        culane.read_lanes(str(path))
    with pytest.raises(ValueError, match=r"nope.lines.txt: cannot read the lane file"):
        culane.read_lanes(str(tmp_path / "nope.lines.txt"))


def test_written_lanes_read_back_in_the_labels_layout(tmp_path):
    lanes = [[(499.186, 590), (507.5, 580.0), (-0.0004, 570)], [], [(1650.42, 440), (0.25, 430)]]
    text = culane.format_lanes(lanes)
    assert text == "499.186 590 507.5 580 0 570 \n1650.42 440 0.25 430 \n"
    path = tmp_path / "a.lines.txt"
    path.write_text(text)
    assert culane.read_lanes(str(path)) == [[(499.186, 590), (507.5, 580), (0, 570)],
                                            [(1650.42, 440), (0.25, 430)]]
    with pytest.raises(ValueError, match="lane 0 point 1 is not finite"):
        culane.format_lanes([[(1, 2), (float("nan"), 3)]])


def test_points_far_outside_the_frame_are_refused_with_their_line():
    inside = [[(-14.06, 510), (1650.4, 590)]]
    culane.check_inside("f.lines.txt", inside, (590, 1640))
    with pytest.raises(culane.FileError, match=r"^f.lines.txt:2: point 1 \(5000, 300\) lies far "
                                               r"outside the 1640x590 frame"):
        culane.check_inside("f.lines.txt", inside + [[(5000, 300)]], (590, 1640))


def test_lane_file_names_and_rows_follow_the_official_tool():
    assert culane.lanes_path("/driver_23_30frame/05151649_0422.MP4/00000.jpg") == (
        "/driver_23_30frame/05151649_0422.MP4/00000.lines.txt")
    assert culane.lanes_path("a/frame") == "a/frame.lines.txt"
    rows = culane.sample_rows(590)
    assert rows[:3] == [590, 580, 570] and rows[-1] == 0 and len(rows) == 60
    assert culane.sample_rows(95) == [95, 85, 75, 65, 55, 45, 35, 25, 15, 5]
    assert culane.category_list("night") == "test8_night.txt"
    assert culane.category_list("normal") == "test0_normal.txt"


def test_lanes_from_rows_list_points_from_the_bottom_up():
    rows = [560, 570, 580, 590]
    lanes = [[10, -2, 30, 40], [-2, -2, -2, -2], [-2, 7, -2, -2]]
    assert culane.lanes_from_rows(lanes, rows) == [[(40, 590), (30, 580), (10, 560)], [(7, 570)]]


def test_list_files_read_plain_and_train_gt_lines(tmp_path):
    path = tmp_path / "train_gt.txt"
    path.write_text("/d/c.MP4/00000.jpg /laneseg/d/c.MP4/00000.png 1 1 1 0\n\n"
                    "/d/c.MP4/00030.jpg\n"
                    "/d/c.MP4/00060.jpg /m.png 1 2 1 0\n"
                    "/d/c.MP4/00090.jpg /m.png 1 1\n")
    problems = []
    entries = culane.read_list(str(path), problems)
    assert entries == [
        culane.ListEntry(1, "/d/c.MP4/00000.jpg", "/laneseg/d/c.MP4/00000.png", (1, 1, 1, 0)),
        culane.ListEntry(3, "/d/c.MP4/00030.jpg", None, None)]
    assert problems == [f"{path}:4: lane flags must be 0 or 1, got '2'",
                        f"{path}:5: 4 fields: a list line is a frame path, or the frame, its "
                        "mask and 4 lane flags (train_gt.txt)"]
    with pytest.raises(culane.FileError, match=rf"^{path}:4: lane flags"):
        culane.read_list(str(path))


def test_list_frames_resolve_inside_the_root_only(tmp_path):
    root = tmp_path / "culane"
    (root / "d").mkdir(parents=True)
    path, relative = culane.resolve_frame(str(root), "/d/00000.jpg")
    assert path == str(root / "d" / "00000.jpg") and relative == "d/00000.jpg"
    with pytest.raises(ValueError, match="frame '../secret.jpg' resolves outside the dataset root"):
        culane.resolve_frame(str(root), "/../secret.jpg")
    assert culane.find_list(str(root), "list/test.txt") == str(root / "list" / "test.txt")
    assert culane.find_list(str(root), str(tmp_path)) == str(tmp_path)
