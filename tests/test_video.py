"""The generated video statements and the two video models of notebook 13."""

import collections
import json

import numpy as np
import pytest

from mmcourse.cli import commands_data
from mmcourse.clip import video
from mmcourse.data import video as video_data
from mmcourse.train import video as video_training

SHAPE = {"frames": video_data.FRAMES, "size": video_data.FRAME_SIZE}


@pytest.fixture(scope="module")
def split():
    return video_data.make_split("test", seed=0, clips=90)


def test_deterministic_balanced_and_shaped(split):
    videos, records = split
    again, records_again = video_data.make_split("test", seed=0, clips=90)
    assert np.array_equal(videos, again) and records == records_again
    assert not np.array_equal(videos, video_data.make_split("test", seed=1, clips=90)[0])
    assert videos.shape == (90, 8, 32, 32, 3) and videos.dtype == np.uint8
    counts = collections.Counter((r["kind"], r["label"]) for r in records)
    assert set(counts.values()) == {30} and len(counts) == 6


def test_statements_by_hand():
    assert video_data.statement("red", "circle", ("left", "up")) == \
        "the red circle moves left, then up"
    assert video_data.statement("blue", "square", ("down",), "zh") == "蓝色方形向下移动"
    assert video_data.reverse_path(("left", "up")) == ("down", "right")
    with pytest.raises(ValueError, match="path must be one or two"):
        video_data.statement("red", "circle", ("left", "up", "left"))


def _centre_track(frames):
    """The shape's centre in each frame, from the pixels that differ from the background."""
    foreground = np.any(frames != np.array([120, 120, 120], np.uint8), axis=-1)
    return np.array([[xs.mean(), ys.mean()] for ys, xs in (np.nonzero(f) for f in foreground)])


def test_the_clips_move_the_way_their_true_statement_says(split):
    videos, records = split
    for record in records:
        if record["label"] != 1:
            continue
        track = _centre_track(videos[record["clip"]])
        words = record["statement"].split(" moves ")[1].split(", then ")
        # a two-step clip turns at frame 4 (at frame 3 when played backwards)
        halves = [track[-1] - track[0]] if len(words) == 1 else \
            [track[3] - track[0], track[7] - track[4]]
        for word, (dx, dy) in zip(words, halves, strict=True):
            expected_x, expected_y = video_data.DIRECTIONS[word]
            assert np.sign(np.round(dx)) == expected_x and np.sign(np.round(dy)) == expected_y


def test_false_order_and_direction_statements_describe_the_clip_played_backwards(split):
    videos, records = split
    for true, false in zip(records[::2], records[1::2], strict=True):
        assert true["clip"] == false["clip"] and true["label"] == 1 and false["label"] == 0
        if true["kind"] == "attribute":
            changed = [a != b for a, b in zip(true["statement"].split()[:3],
                                              false["statement"].split()[:3], strict=True)]
            assert sum(changed) == 1
            assert true["statement"].split(" moves ")[1] == false["statement"].split(" moves ")[1]
        else:
            path = tuple(true["statement"].split(" moves ")[1].split(", then "))
            assert false["statement"].endswith(", then ".join(video_data.reverse_path(path)))


def test_a_clip_and_its_reverse_have_the_same_mean_frame(split):
    videos, _ = split
    np.testing.assert_array_equal(video_data.mean_frame(videos),
                                  video_data.mean_frame(videos[:, ::-1]))
    assert not np.array_equal(videos, videos[:, ::-1])


def test_text_alone_cannot_tell_true_from_false_statements():
    # The best text-only rule learnt on training statements, scored on the test split.
    _, train = video_data.make_split("train", seed=0, clips=1500)
    _, test = video_data.make_split("test", seed=0, clips=600)
    truth = collections.defaultdict(list)
    for record in train:
        truth[record["statement"]].append(record["label"])
    says_true = {s: np.mean(labels) >= 0.5 for s, labels in truth.items()}
    correct = [says_true.get(r["statement"], True) == (r["label"] == 1) for r in test]
    assert abs(np.mean(correct) - 0.5) < 0.05


def test_the_averaging_encoder_cannot_see_the_order_and_the_temporal_one_can(split):
    videos, _ = split
    forwards, backwards = videos[:4].astype(np.float32), videos[:4, ::-1].astype(np.float32)
    average = video.build_video_encoder("average", **SHAPE)
    np.testing.assert_allclose(average(forwards).numpy(), average(backwards).numpy(),
                               atol=1e-5)
    temporal = video.build_video_encoder("temporal", **SHAPE)
    assert np.abs(temporal(forwards).numpy() - temporal(backwards).numpy()).max() > 1e-4
    with pytest.raises(ValueError, match="fusion must be one of"):
        video.build_video_encoder("lstm", **SHAPE)


def test_accuracy_by_kind_by_hand():
    records = [{"label": 1, "kind": "order"}, {"label": 0, "kind": "order"},
               {"label": 1, "kind": "attribute"}, {"label": 0, "kind": "attribute"}]
    result = video_training.accuracy_by_kind([0.9, 0.8, 0.7, 0.2], records)
    assert result == {"order": 0.5, "attribute": 1.0, "all": 0.75}
    with pytest.raises(ValueError, match="same length"):
        video_training.accuracy_by_kind([0.5], records)


def test_train_video_reports_what_the_command_line_promises():
    lines = []
    result = video_training.train_video("average", seed=0, epochs=1, train_clips=30, test_clips=30,
                               learning_rate=1e-3, keep_model=True, log=lines.append)
    # one line per epoch (train.core.fit_logged), its loss the one the result reports
    (epoch_line,) = [line for line in lines if " epoch " in line]
    assert epoch_line.startswith("[match/video/average] epoch 1/1  ")
    assert f"loss {result['loss'][0]:.4f}" in epoch_line.split("  ")
    assert float(result.pop("model").optimizer.learning_rate) == pytest.approx(1e-3)
    assert set(result["accuracy_by_type"]) == {"order", "direction", "attribute"}
    for key in ("test_accuracy", "train_seconds", "params"):
        assert isinstance(result[key], float | int)
    assert result["test_examples"] == 60 and result["fusion"] == "average"
    # the attribute accuracy is the colour and shape ones weighted by their pairs
    _, records = video_data.make_split("test", seed=0, clips=30)
    counts = collections.Counter(r["change"] for r in records)
    by_change = result["accuracy_by_change"]
    assert set(by_change) == set(counts) <= set(video_data.CHANGES)
    weighted = (counts["colour"] * by_change["colour"] + counts["shape"] * by_change["shape"]) \
        / (counts["colour"] + counts["shape"])
    assert result["accuracy_by_type"]["attribute"] == pytest.approx(weighted)


def test_half_the_clips_are_played_backwards(split):
    # Forwards, a two-step clip moves 4 steps, then 3 (its step from frame 3 to 4 is along the
    # first direction); backwards, 3 then 4. Both must be common, or a clip's reverse would
    # be rarer than the clip and averaging frames could guess the order.
    videos, records = split
    forwards = []
    for record in records[::2]:
        if record["kind"] != "order":
            continue
        track = _centre_track(videos[record["clip"]])
        first = record["statement"].split(" moves ")[1].split(", then ")[0]
        step = np.sign(np.round(track[4] - track[3]))
        forwards.append(tuple(step) == video_data.DIRECTIONS[first])
    assert len(forwards) == 30 and 0.25 < np.mean(forwards) < 0.75


@pytest.mark.parametrize("language", ["en", "zh"])
def test_no_statement_is_cut_short_in_either_language(language):
    from mmcourse.data import text

    _, records = video_data.make_split("test", seed=0, clips=60)
    key = "statement" if language == "en" else "statement_zh"
    statements = [r[key] for r in records]
    ids = video_training.vectorize(statements, video.SEQUENCE_LENGTHS[language])
    assert [int(np.count_nonzero(row)) for row in ids] == \
        [len(text.split_words(s)) for s in statements]
    assert not np.any(ids == 1)


@pytest.mark.parametrize("learning_rate", [0, -1e-3, True, "1e-3"])
def test_train_video_refuses_a_bad_learning_rate(learning_rate):
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        video_training.train_video("average", learning_rate=learning_rate)


def test_train_video_in_chinese():
    result = video_training.train_video("temporal", seed=0, epochs=1, train_clips=30, test_clips=30,
                               language="zh")
    assert result["language"] == "zh" and 0 <= result["test_accuracy"] <= 1


def test_each_pair_names_what_its_false_statement_changes(split):
    _, records = split
    seen = collections.Counter()
    for true, false in zip(records[::2], records[1::2], strict=True):
        assert true["change"] == false["change"]
        words, other = true["statement"].split(), false["statement"].split()
        expected = "colour" if words[1] != other[1] else "shape" if words[2] != other[2] \
            else "direction" if ", then " not in true["statement"] else "order"
        assert true["change"] == expected
        seen[expected] += 1
    assert seen["order"] == seen["direction"] == 30 and seen["colour"] + seen["shape"] == 30
    assert min(seen["colour"], seen["shape"]) >= 8  # both attribute changes are common


def test_accuracy_by_change_by_hand():
    records = [{"label": 1, "change": "colour"}, {"label": 0, "change": "colour"},
               {"label": 1, "change": "shape"}, {"label": 0, "change": "shape"},
               {"label": 1, "change": "order"}, {"label": 0, "change": "order"}]
    result = video_training.accuracy_by_change([0.9, 0.2, 0.7, 0.6, 0.4, 0.3], records)
    assert result == {"order": 0.5, "colour": 1.0, "shape": 0.5}
    with pytest.raises(ValueError, match="same length"):
        video_training.accuracy_by_change([0.5], records)


def test_the_frame_cnn_reads_what_beside_a_coarse_where():
    # 32 channels of "what" (the grid's maximum) beside a 4 x 4 map of 8 channels: the full
    # 8 x 8 x 32 grid (2,048 numbers) drowned colour and shape (notebook 13).
    frame_cnn = video.build_video_encoder("average", **SHAPE).get_layer("per_frame").layer
    assert frame_cnn.get_layer("what").output.shape[-1] == 32
    assert frame_cnn.get_layer("where").output.shape[-1] == 4 * 4 * video.WHERE_CHANNELS


@pytest.fixture
def small_splits(monkeypatch):
    monkeypatch.setitem(video_data.CLIPS, "train", 6)
    monkeypatch.setitem(video_data.CLIPS, "test", 3)


def test_generate_writes_what_make_split_makes_and_verify_finds_changes(tmp_path, small_splits):
    folder = video_data.generate(tmp_path / "video", seed=2)
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json", "test.jsonl", "test.npy", "train.jsonl", "train.npy"]
    for split in video_data.SPLITS:
        videos, records = video_data.load_split(split, folder)
        expected_videos, expected_records = video_data.make_split(split, seed=2)
        np.testing.assert_array_equal(videos, expected_videos)
        assert records == expected_records and videos.dtype == np.uint8
    assert video_data.verify(folder) == []
    assert commands_data.video_clips(folder, verify=True) == 0
    raw = bytearray((folder / "train.npy").read_bytes())
    raw[-1] ^= 1
    (folder / "train.npy").write_bytes(bytes(raw))
    assert video_data.verify(folder) == ["altered: train.npy"]
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["seed"] = 3  # the files are no longer what this seed makes
    (folder / "manifest.json").write_text(json.dumps(manifest))
    problems = video_data.verify(folder)
    assert "not reproducible: test.jsonl differs from what seed 3 generates" in problems
    (folder / "manifest.json").write_text("{}")
    assert video_data.verify(folder) == ["altered: manifest.json (not a valid manifest)"]
    with pytest.raises(FileNotFoundError, match="--modality video"):
        video_data.load_split("train", tmp_path / "nothing")


def test_an_interrupted_generate_leaves_the_previous_data(tmp_path, small_splits, monkeypatch):
    folder = video_data.generate(tmp_path / "video", seed=0)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    real = video_data.make_split

    def dies_on_test(split, seed=0, clips=None):
        if split == "test":
            raise KeyboardInterrupt
        return real(split, seed, clips)

    monkeypatch.setattr(video_data, "make_split", dies_on_test)
    with pytest.raises(KeyboardInterrupt):
        video_data.generate(folder, seed=1)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["video"]  # no partial folder left
