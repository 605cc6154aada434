"""The generated audio-caption data of notebook 13."""

import collections
import json

import numpy as np
import pytest

from mmcourse import scratch
from mmcourse.data import audio as audio_data


@pytest.fixture(scope="module")
def test_split():
    return audio_data.make_split("test", seed=0)


def test_same_seed_same_bytes_other_seed_other_clips(test_split):
    waveforms, records = test_split
    again, records_again = audio_data.make_split("test", seed=0)
    assert np.array_equal(waveforms, again) and records == records_again
    other, _ = audio_data.make_split("test", seed=1)
    assert not np.array_equal(waveforms, other)
    train, _ = audio_data.make_split("train", seed=0, clips_per_pair=1)
    assert not any(np.array_equal(train[0], clip) for clip in waveforms)  # splits differ


def test_shapes_dtype_and_balance(test_split):
    waveforms, records = test_split
    assert waveforms.shape == (56 * 4, 16000) and waveforms.dtype == np.int16
    counts = collections.Counter(tuple(r["events"]) for r in records)
    assert len(counts) == 8 * 7 and set(counts.values()) == {4}
    assert all(first != second for first, second in counts)


def test_captions_by_hand():
    assert audio_data.caption(("low tone", "two clicks")) == "a low tone, then two clicks"
    assert audio_data.caption(("rising chirp", "noise burst"), "zh") == "上升的滑音，然后一阵噪声"
    with pytest.raises(ValueError, match="unknown event"):
        audio_data.caption(("low tone", "whistle"))
    with pytest.raises(ValueError, match="language"):
        audio_data.caption(("low tone", "one click"), "fr")


def _events_of(caption):
    by_caption = {audio_data.caption(pair): pair for pair in audio_data.PAIRS}
    return by_caption[caption]


def test_negatives_change_exactly_one_thing(test_split):
    _, records = test_split
    for record in records:
        true, false = tuple(record["events"]), _events_of(record["negative"])
        assert false != true and false[0] != false[1]
        if record["change"] == "order":
            assert false == true[::-1]
        else:
            differs = [position for position in (0, 1) if true[position] != false[position]]
            assert len(differs) == 1
            old, new = true[differs[0]], false[differs[0]]
            kind = {"tone": "pitch", "chirp": "direction", "clicks": "count"}
            assert audio_data.KINDS[old] == audio_data.KINDS[new]
            assert record["change"] == kind[audio_data.KINDS[old]]
        assert record["negative_zh"] == audio_data.caption(false, "zh")
    assert set(r["change"] for r in records) == set(audio_data.CHANGE_KINDS)


def test_negative_options_by_hand():
    options = dict(audio_data.one_change_negatives(("low tone", "one click")))
    assert options == {("one click", "low tone"): "order", ("high tone", "one click"): "pitch",
                       ("low tone", "two clicks"): "count",
                       ("low tone", "three clicks"): "count"}
    # a flip that would repeat an event is not offered
    assert dict(audio_data.one_change_negatives(("low tone", "high tone"))) == {
        ("high tone", "low tone"): "order"}


def test_text_alone_cannot_tell_true_from_false_captions():
    # The best text-only rule: guess "true" for a caption seen more often as true in training.
    _, train = audio_data.make_split("train", seed=0)
    _, test = audio_data.make_split("test", seed=0)
    true_count = collections.Counter(r["caption"] for r in train)
    false_count = collections.Counter(r["negative"] for r in train)
    assert max(abs(true_count[c] - false_count[c]) for c in true_count) <= 2

    def says_true(caption):
        return true_count[caption] >= false_count[caption]

    correct = [says_true(r["caption"]) for r in test] + [not says_true(r["negative"])
                                                          for r in test]
    assert abs(np.mean(correct) - 0.5) < 0.06


def test_the_sounds_are_what_the_captions_say():
    rng = np.random.default_rng(0)
    tone = audio_data.to_float(audio_data.synthesize(("high tone", "low tone"), rng))
    spectrum = np.abs(scratch.stft(tone, 400, 160, 512))
    hz = spectrum.argmax(axis=1) * 16000 / 512
    loud = spectrum.max(axis=1) > 10 * np.median(spectrum.max(axis=1))
    first_half = np.arange(len(hz)) < len(hz) / 2
    assert np.all(hz[loud & first_half] >= 1100) and np.all(hz[loud & ~first_half] <= 450)
    chirp = audio_data.to_float(audio_data.synthesize(("rising chirp", "noise burst"), rng))
    peaks = np.abs(scratch.stft(chirp[:8000], 400, 160, 512)).argmax(axis=1)
    active = peaks[8:28]  # 130-450 ms: inside the first event
    assert np.corrcoef(np.arange(len(active)), active)[0, 1] > 0.9  # the pitch rises


def test_wrong_sample_rate_and_split_name_the_argument():
    with pytest.raises(ValueError, match="sample_rate must be a whole number of Hz"):
        audio_data.make_split("test", sample_rate=4000)
    with pytest.raises(ValueError, match="split must be one of"):
        audio_data.make_split("validation")
    with pytest.raises(ValueError, match="waveforms must be int16"):
        audio_data.to_float(np.zeros(3))


def test_generate_verify_and_load(tmp_path, monkeypatch):
    monkeypatch.setattr(audio_data, "CLIPS_PER_PAIR", {"train": 1, "test": 1})
    folder = audio_data.generate(tmp_path / "audio", seed=3, sample_rate=8000)
    assert audio_data.verify(folder) == []
    waveforms, records = audio_data.load_split("test", folder)
    expected, expected_records = audio_data.make_split("test", 3, 8000)
    assert np.array_equal(waveforms, expected) and records == expected_records
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["sample_rate"] == 8000
    # an altered file is found, and so is a manifest whose hashes were rewritten to match
    data = bytearray((folder / "train.npy").read_bytes())
    data[-1] ^= 1
    (folder / "train.npy").write_bytes(bytes(data))
    assert audio_data.verify(folder) == ["altered: train.npy"]
    import hashlib
    manifest["files"]["train.npy"]["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert audio_data.verify(folder) == [
        "not reproducible: train.npy differs from what seed 3 generates"]
    assert audio_data.verify(tmp_path / "none")[0].startswith("missing: manifest.json")


def test_generate_is_atomic(tmp_path, monkeypatch):
    monkeypatch.setattr(audio_data, "CLIPS_PER_PAIR", {"train": 1, "test": 1})
    folder = audio_data.generate(tmp_path / "audio", seed=0, sample_rate=8000)
    before = (folder / "train.npy").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="No space"):
        patch.setattr(audio_data, "make_split", disk_full)
        audio_data.generate(folder, seed=1, sample_rate=8000)
    assert (folder / "train.npy").read_bytes() == before and audio_data.verify(folder) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio"]  # no partial left
