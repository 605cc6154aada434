"""Training on your own folder, one-file models and predictions (mmcourse.apps.owndata):
``train --data-dir``, ``predict``, the vocabulary inside the saved model, round trips."""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from mmcourse import REPO_ROOT
from mmcourse.__main__ import main
from mmcourse.apps import owndata, raw_model
from mmcourse.data import draw, folders, statements, store, text
from mmcourse.data import scans as scan_data
from mmcourse.data import scenes as data


def _tree_digest(folder):
    """A digest of every file name and content under ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        digest.update(path.relative_to(folder).as_posix().encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    return scan_data.write_scan_folder(tmp_path_factory.mktemp("own") / "scans", count=40, seed=1,
                                       language="both")


@pytest.fixture(scope="module")
def trained(scans, tmp_path_factory):
    before = _tree_digest(scans)
    save = tmp_path_factory.mktemp("model") / "runs" / "scans" / "scans.keras"  # 2 new folders
    start = time.perf_counter()
    result = owndata.train_folder(scans, epochs=1, seed=0, save=save, log=None,
                                  keep_model=True)
    assert 0 < result["train_seconds"] <= time.perf_counter() - start  # fitting is a part
    assert result["saved"] == str(save) and save.is_file()
    assert _tree_digest(scans) == before  # nothing written into the folder
    return result


def test_split_by_image_is_deterministic_disjoint_and_sized():
    names = [f"{i:02d}.png" for i in range(20)]
    splits = owndata.split_images(names + names[:5], seed=3)  # repeated names: one image
    assert {k: len(v) for k, v in splits.items()} == {"test": 2, "val": 2, "train": 16}
    assert set.union(*splits.values()) == set(names)
    assert sum(len(v) for v in splits.values()) == 20  # disjoint
    assert owndata.split_images(list(reversed(names)), seed=3) == splits  # order-free
    assert owndata.split_images(names, seed=4) != splits
    with pytest.raises(folders.DataError, match="at least 3 different images"):
        owndata.split_images(["a.png", "b.png", "a.png"])


def test_shuffled_pairs_are_balanced_and_never_an_own_caption():
    names = ["a", "a", "b", "c"]
    texts = ["red", "round", "blue", "red"]
    out_names, out_texts, labels = owndata.shuffled_pairs(names, texts, np.random.default_rng(0))
    assert labels.tolist() == [1.0, 0.0] * 4
    assert out_names == ["a", "a", "a", "a", "b", "b", "c", "c"]
    assert out_texts[0::2] == texts
    negatives = dict(zip(range(4), out_texts[1::2], strict=True))
    assert negatives[0] not in ("red", "round") and negatives[1] not in ("red", "round")
    assert negatives[0] == negatives[1] == "blue"  # a's only other caption
    assert negatives[3] not in ("red",)
    with pytest.raises(folders.DataError, match="cannot make a false pair for image 'a'"):
        owndata.shuffled_pairs(["a", "b"], ["same", "same"], np.random.default_rng(0))


def test_scan_captions_by_hand():
    finding = {"kind": "bright", "place": "left", "size": "small"}
    assert scan_data.scan_caption(finding, "en") == "a small bright spot on the left"
    assert scan_data.scan_caption(finding, "zh") == "左侧有一个小的亮斑"
    assert scan_data.scan_caption(None, "zh") == "未见异常"
    assert text.split_words(scan_data.scan_caption(finding, "zh")) == list("左侧有一个小的亮斑")


def test_build_model_takes_the_vocabulary_size_from_the_vocabulary():
    from mmcourse.matcher import model as models

    vocabulary = text.build_vocabulary(["左侧有一个小的亮斑", "a small dark spot"])
    model = models.build_model("match", "concat", vocabulary=vocabulary, sequence_length=12)
    embedding = model.get_layer("text_encoder").get_layer("embedding")
    assert embedding.input_dim == len(vocabulary) == 15
    ids = text.vectorize(["左侧有一个大的暗斑"], vocabulary=vocabulary, warn=False)  # 大 unknown
    assert model.predict([np.zeros((1, 64, 64, 3), np.float32), ids], verbose=0).shape == (1, 1)
    with pytest.raises(ValueError, match="vocabulary_size=49 disagrees with the vocabulary of 15"):
        models.build_model("match", "concat", vocabulary=vocabulary, vocabulary_size=49)


def test_train_folder_result_has_the_train_keys_plus_splits_and_oov(trained):
    for key in ("task", "fusion", "test_accuracy", "test_loss", "params", "train_seconds",
                "seconds_per_epoch", "epochs_run", "history", "weights_sha256",
                "split_sizes", "oov_rate", "pairs"):
        assert key in trained, key
    assert trained["pairs"] == "shuffled captions"
    assert trained["batch_size"] == 64  # the default of `train --batch-size` too
    assert trained["split_sizes"] == {"train": {"images": 32, "pairs": 64 * 8},  # 8 rounds
                                      "val": {"images": 4, "pairs": 8},
                                      "test": {"images": 4, "pairs": 8}}
    # values a wrong wiring could not give, each worked out here from the splits:
    splits = trained["data"].splits
    train_words = {w for caption in splits["train"]["texts"] for w in text.split_words(caption)}
    test_words = [w for caption in splits["test"]["texts"] for w in text.split_words(caption)]
    assert trained["oov_rate"] == pytest.approx(
        sum(w not in train_words for w in test_words) / len(test_words))
    assert trained["vocabulary_size"] == len(train_words) + 2  # and "" and "[UNK]"
    # the accuracy is over the 8 test pairs: that of the saved model's answers, thresholded
    labels = np.asarray(splits["test"]["labels"])
    answers = raw_model.predict(trained["model"], list(splits["test"]["images"]),
                                list(splits["test"]["texts"])) > 0.5
    assert trained["test_accuracy"] == pytest.approx(np.mean(answers == (labels > 0.5)))
    true_pairs = labels > 0.5
    assert trained["accuracy_by_type"]["true pair"] == pytest.approx(np.mean(answers[true_pairs]))
    assert trained["accuracy_by_type"]["shuffled caption"] == pytest.approx(
        np.mean(~answers[~true_pairs]))
    assert true_pairs.sum() == 4 and trained["test_examples"] == 8
    assert trained["train_examples"] == 64 * 8 and trained["epochs_run"] == 1
    assert len(trained["history"]["loss"]) == 1
    assert trained["seconds_per_epoch"] == trained["train_seconds"]
    json.dumps({k: v for k, v in trained.items() if k not in ("model", "data")})


def test_saved_model_predicts_raw_strings_identically_after_reload(trained, scans):
    model = trained["model"]
    test = trained["data"].splits["test"]
    texts = list(test["texts"])
    images = list(test["images"])
    before = raw_model.predict(model, images, texts)
    # the raw-string model equals the token-id model fed with vectorize's ids
    layer = model.get_layer("vectorizer")
    vocabulary = layer.get_vocabulary()
    ids = text.vectorize(texts, vocabulary=vocabulary,
                         sequence_length=trained["sequence_length"], warn=False)
    inner = [lyr for lyr in model.layers if isinstance(lyr, keras.Model)][0]
    by_ids = inner.predict([np.stack(images).astype(np.float32) / 255, ids], verbose=0)
    np.testing.assert_allclose(before, by_ids.reshape(-1), atol=1e-6)
    reloaded = raw_model.load_raw_model(trained["saved"])
    np.testing.assert_allclose(raw_model.predict(reloaded, images, texts), before, atol=1e-6)


def test_keras_load_model_with_safe_mode_alone_in_a_fresh_python(trained, tmp_path):
    script = (
        "import json, sys, numpy as np, keras\n"
        "import mmcourse.apps.owndata\n"
        "mmcourse.apps.raw_model.register_keras_objects()\n"
        "model = keras.saving.load_model(sys.argv[1], safe_mode=True)\n"
        "images = np.load(sys.argv[2])\n"
        "texts = np.array(json.loads(sys.argv[3]), dtype=object)\n"
        "print(json.dumps(model.predict({'image': images, 'text': texts}, verbose=0)"
        ".reshape(-1).tolist()))\n")
    test = trained["data"].splits["test"]
    images = np.stack(test["images"][:3]).astype(np.float32) / 255
    np.save(tmp_path / "images.npy", images)
    texts = list(test["texts"][:3])
    completed = subprocess.run(
        [sys.executable, "-c", script, trained["saved"], str(tmp_path / "images.npy"),
         json.dumps(texts)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert completed.returncode == 0, completed.stderr
    fresh = json.loads(completed.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(fresh, raw_model.predict(trained["model"], list(test["images"][:3]),
                                                        texts), atol=1e-6)


def test_predict_command_one_pair_and_csv(trained, scans, capsys):
    row = (scans / "captions.csv").read_text(encoding="utf-8").splitlines()[1].split(",")
    image, caption = str(scans / row[0]), row[1]
    assert main(["predict", "--model", trained["saved"], "--image", image, "--text", caption,
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = raw_model.predict(trained["model"], [image], [caption])[0]
    assert result["probability"] == pytest.approx(expected, abs=1e-5)
    assert result["predicted_label"] == int(expected > 0.5)
    assert main(["predict", "--model", trained["saved"], "--csv",
                 str(scans / "captions.csv"), "--json"]) == 0
    predictions = json.loads(capsys.readouterr().out)["predictions"]
    assert len(predictions) == 40 and predictions[0]["line"] == 2
    assert predictions[0]["probability"] == pytest.approx(expected, abs=1e-5)


def test_predict_errors_are_clear(trained, scans, tmp_path, capsys):
    from mmcourse.matcher import model as models

    image = str(sorted((scans / "images").iterdir())[0])
    (tmp_path / "corrupt.keras").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n nope")
    other = models.build_model("match", "concat", vocabulary=["", "[UNK]", "a"])
    other.save(tmp_path / "token_ids.keras")
    cases = [
        (["--model", trained["saved"], "--image", str(tmp_path / "none.png"), "--text", "x"],
         "image file not found"),
        (["--model", trained["saved"], "--image", str(tmp_path / "broken.png"), "--text", "x"],
         "cannot decode image file"),
        (["--model", trained["saved"], "--image", image, "--text", "  ！。 "],
         r"texts\[0\] is empty"),
        (["--model", str(tmp_path / "corrupt.keras"), "--image", image, "--text", "x"],
         "cannot load model .*corrupt.keras"),
        (["--model", str(tmp_path / "missing.keras"), "--image", image, "--text", "x"],
         "model file not found"),
        (["--model", str(tmp_path / "token_ids.keras"), "--image", image, "--text", "x"],
         "is not a raw-input match or qa model.*takes token ids.*carries no vocabulary"),
    ]
    import re

    for arguments, message in cases:
        assert main(["predict", *arguments]) == 1, arguments
        err = capsys.readouterr().err
        assert re.search(message, err), (message, err)
        assert "Traceback" not in err
    with pytest.raises(SystemExit) as stopped:
        main(["predict", "--model", trained["saved"], "--image", image])
    assert stopped.value.code == 2
    assert "give both --image FILE and --text TEXT" in capsys.readouterr().err


def test_train_data_dir_command_errors(scans, tmp_path, capsys):
    for arguments, message in [
        (["--data-dir", str(tmp_path / "none")], "argument --data-dir: .* is not a folder"),
        (["--data-dir", str(scans), "--level", "relations"], "argument --level: not used"),
        (["--data-dir", str(scans), "--task", "qa"], "argument --task: --data-dir trains"),
        (["--sequence-length", "5"], "argument --sequence-length: only with --data-dir"),
        (["--root", str(scans)], "argument --root: .* holds a captions.csv.*--data-dir"),
    ]:
        with pytest.raises(SystemExit) as stopped:
            main(["train", *arguments])
        assert stopped.value.code == 2
        import re

        assert re.search(message, capsys.readouterr().err), message
    same = tmp_path / "same"
    same.mkdir()
    (same / "captions.csv").write_text("image,text\na.png,x\nb.png,x\nc.png,x\n")
    for name in "abc":
        (same / f"{name}.png").write_bytes((scans / "images" / "scan_00000.png").read_bytes())
    assert main(["train", "--data-dir", str(same), "--epochs", "1"]) == 1
    assert "cannot make a false pair" in capsys.readouterr().err


def test_course_data_is_never_generated_into_your_folder(scans):
    before = _tree_digest(scans)
    with pytest.raises(folders.DataError, match="holds a captions.csv: it is your own data"):
        store.ensure_data(scans)
    with pytest.raises(folders.DataError, match="--data-dir"):
        store.generate(scans, progress=False)
    assert _tree_digest(scans) == before


def test_planted_problems_are_each_found_on_their_line(tmp_path):
    from mmcourse.data import folders

    folder = scan_data.write_scan_folder(tmp_path / "scans", count=12, seed=3, language="zh")
    expected = scan_data.plant_problems(folder)
    assert sorted(expected) == [14, 15, 16, 19, 20]  # 12 rows + header: appended from line 14
    check = folders.check_folder(folder)
    assert sorted(p.line for p in check.problems) == sorted(expected)
    messages = {p.line: str(p) for p in check.problems}
    assert "not found" in messages[14] and "text column is empty" in messages[15]
    assert "closes only on line 18" in messages[16]
    assert "corrupt JPEG data" in messages[19] and "megapixels" in messages[20]


def test_scan_captions_parse_back_in_both_languages():
    for finding in scan_data._all_findings():
        for language in ("en", "zh"):
            assert scan_data.parse_scan_caption(scan_data.scan_caption(finding, language)) == finding
    with pytest.raises(ValueError, match="not a scan caption"):
        scan_data.parse_scan_caption("a red circle")


def test_shapes_folder_captions_describe_their_images(tmp_path):
    from mmcourse.data import folders

    folder = scan_data.write_shapes_folder(tmp_path / "shapes", count=6, seed=0, language="zh")
    check = folders.check_folder(folder)
    assert check.ok and not check.captions.has_label and len(check.rows) == 6
    rng = np.random.default_rng(0)  # the same draws, checked against the rendered pixels
    for row in check.rows:
        objects = data.random_scene(rng, "attributes")
        assert row.text == statements.statement_text({"kind": "attribute", **objects[0]}, "zh")
        np.testing.assert_array_equal(check.images[row.image], draw.render_scene(objects))


# --- the labelled scan folder (issue 28, section 7) ---------------------------------------------


def _finding_seen(image):
    """The finding in a scan, read from its pixels (not from the writer): the oval is grey
    (about 110), a bright spot 230, a dark one 35, a small spot has radius 5 (79 pixels) and a
    large one 10 (314), 17 to 21 pixels from the centre on its side."""
    size = image.shape[0]
    yy, xx = np.mgrid[:size, :size] - size // 2
    inside = yy ** 2 + xx ** 2 <= 25 ** 2  # well inside the oval (semi-axes >= 27)
    bright, dark = inside & (image > 170), inside & (image < 70)
    if bright.sum() < 20 and dark.sum() < 20:
        return None
    spot, kind = (bright, "bright") if bright.sum() > dark.sum() else (dark, "dark")
    dy, dx = yy[spot].mean(), xx[spot].mean()
    place = ("left" if dx < 0 else "right") if abs(dx) > abs(dy) else ("top" if dy < 0 else
                                                                      "bottom")
    return {"kind": kind, "place": place, "size": "large" if spot.sum() > 150 else "small"}


def test_labelled_scan_folder_pairs_each_image_with_its_true_and_one_false_caption(tmp_path):
    import csv

    import cv2

    folder = scan_data.write_scan_folder(tmp_path / "labelled", count=30, seed=5,
                                         language="both", labels=True)
    with open(folder / "captions.csv", encoding="utf-8", newline="") as file:
        header, *rows = list(csv.reader(file))
    assert header == ["image", "text", "label"]
    assert len(rows) == 60
    assert sorted(p.name for p in (folder / "images").iterdir()) == [
        f"scan_{i:05d}.png" for i in range(30)]
    findings = []
    for index in range(30):
        true_row, false_row = rows[2 * index], rows[2 * index + 1]
        name = f"images/scan_{index:05d}.png"
        assert (true_row[0], true_row[2], false_row[0], false_row[2]) == (name, "1", name, "0")
        image = cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED)
        assert image.shape == (96, 96)
        said = scan_data.parse_scan_caption(true_row[1])
        assert said == _finding_seen(image), f"{name}: {true_row[1]!r}"
        assert scan_data.parse_scan_caption(false_row[1]) != said  # another finding
        language = "zh" if index % 2 == 0 else "en"  # both: Chinese first, then English
        assert true_row[1] == scan_data.scan_caption(said, language)
        assert false_row[1] in (scan_data.scan_caption(f, language)
                                for f in scan_data._all_findings())
        findings.append(said)
    assert None in findings and len({str(f) for f in findings}) >= 10  # varied
    # deterministic under the seed, different under another
    again = scan_data.write_scan_folder(tmp_path / "again", count=30, seed=5, language="both",
                                        labels=True)
    assert (again / "captions.csv").read_bytes() == (folder / "captions.csv").read_bytes()
    other = scan_data.write_scan_folder(tmp_path / "other", count=30, seed=6, language="both",
                                        labels=True)
    assert (other / "captions.csv").read_bytes() != (folder / "captions.csv").read_bytes()


def test_load_own_data_splits_by_image_and_reads_64_pixel_rgb_images(tmp_path):
    import csv

    import cv2

    folder = scan_data.write_scan_folder(tmp_path / "labelled", count=30, seed=5, labels=True)
    with open(folder / "captions.csv", encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))[1:]
    own = owndata.load_own_data(folder, seed=2)
    assert own.pairs == "labels" and own.negatives == {}
    # with labels no caption warning; 3 test images of 2 rows each: 6 pairs, steps of 1/6,
    # 95% interval 1.96 * 0.5 / sqrt 6 = 0.40, 100 pairs need 100 / 2 / 10% = 500 images
    assert own.warnings == [
        "warning: the test split is too small to measure: 3 image(s), about 6 pair(s), so the "
        "test accuracy moves in steps of 17% and its 95% interval is about +-0.40; use at "
        "least 100 test pairs (about 500 images)"]
    # 30 images: 10% (3) to test, 3 to validation, 24 to training; two rows per image
    assert own.sizes() == {"train": {"images": 24, "pairs": 48},
                           "val": {"images": 3, "pairs": 6}, "test": {"images": 3, "pairs": 6}}
    for split in own.splits.values():
        names = split["image_names"]
        expected = [(r[0], r[1], float(r[2])) for r in rows if r[0] in set(names)]  # file order
        assert list(zip(names, split["texts"], split["labels"].tolist(), strict=True)) == expected
        assert split["images"].shape == (len(names), 64, 64, 3)
        for name, image in zip(names, split["images"], strict=True):
            grey = cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE)
            small = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)  # 96 -> 64
            assert np.abs(image.astype(int) - small[..., None]).max() <= 1

    plain = scan_data.write_scan_folder(tmp_path / "plain", count=30, seed=5)
    own = owndata.load_own_data(plain, seed=2)
    # without labels each image has one caption; training: ceil(4000 / 48) = 84 rounds,
    # capped at 8, of a true and a false pair per image
    assert own.pairs == "shuffled captions"
    assert own.sizes() == {"train": {"images": 24, "pairs": 24 * 2 * 8},
                           "val": {"images": 3, "pairs": 6}, "test": {"images": 3, "pairs": 6}}
    for name, split in own.splits.items():
        assert split["labels"].tolist() == [1.0, 0.0] * (len(split["labels"]) // 2)
        assert own.negatives[name]["false_pairs"] == len(split["labels"]) // 2
    assert "training pairs: 8 round(s) of true pairs, each with fresh shuffled captions as " \
           "false pairs" in own.notes


def test_three_images_are_enough_to_split_and_to_warn_about_the_test_split():
    rows = [folders.Row(line, f"{name}.png", f"{name} caption", 1.0)
            for line, name in enumerate("abc", start=2)]
    # one test image, one pair: steps of 100%, interval 1.96 * 0.5 = 0.98, 1,000 images needed
    assert owndata.folder_warnings(rows, has_label=True) == [
        "warning: the test split is too small to measure: 1 image(s), about 1 pair(s), so the "
        "test accuracy moves in steps of 100% and its 95% interval is about +-0.98; use at "
        "least 100 test pairs (about 1,000 images)"]
    assert owndata.folder_warnings(rows[:2], has_label=True) == []  # too few to split at all


def test_a_scan_drawn_twice_as_large_shows_the_same_scan_twice_as_large():
    def extent(image):  # the oval's width and height: the columns and rows it covers
        ys, xs = np.nonzero(image > 50)
        return xs.max() - xs.min() + 1, ys.max() - ys.min() + 1

    finding = {"kind": "dark", "place": "left", "size": "large"}
    for case in (None, finding):
        small = scan_data.draw_scan(case, np.random.default_rng(4), 96)
        large = scan_data.draw_scan(case, np.random.default_rng(4), 192)
        assert large.shape == (192, 192)
        for one, two in zip(extent(small), extent(large), strict=True):
            assert abs(two - 2 * one) <= 3, (extent(small), extent(large))


def test_a_scans_oval_is_opencvs_whole_ellipse_of_the_documented_size():
    # The reference: a filled ellipse drawn by hand with OpenCV from 0 to 360 degrees,
    # centred, its half-axes (34, 30) pixels at 96 pixels, each jittered by -3 to +3 and
    # scaled with the size. The scan adds noise only where the oval is, then a 3 x 3 blur,
    # so its background (pixels exactly 0) is what lies more than one pixel (the blur's
    # reach) from the oval: the complement of the oval dilated by a 3 x 3 square. Exactly
    # one oval of half-axes within +-5 must match it pixel for pixel, and over 30 scans the
    # jitters seen are -3 to +3, no more.
    import cv2

    def half_axes(scan):
        size = scan.shape[0]
        scale, centre = size / 96, (size // 2, size // 2)
        found = []
        for a in range(-5, 6):
            for b in range(-5, 6):
                oval = np.zeros((size, size), np.uint8)
                cv2.ellipse(oval, centre, (int((34 + a) * scale), int((30 + b) * scale)), 0, 0,
                            360, 1, -1)
                if np.array_equal(scan == 0, cv2.dilate(oval, np.ones((3, 3), np.uint8)) == 0):
                    found.append((a, b))
        assert len(found) == 1, (size, found)
        return found[0]

    jitters = [half_axes(scan_data.draw_scan(None, np.random.default_rng(seed), 96))
               for seed in range(30)]
    assert {a for a, _ in jitters} == {b for _, b in jitters} == set(range(-3, 4)), jitters
    for seed in range(2):
        half_axes(scan_data.draw_scan(None, np.random.default_rng(seed), 192))


@pytest.mark.parametrize(("fusion", "needle"), [
    ("objects", "reads the course scenes' object tokens"),
    ("transformer", "from the course scenes' cell targets"),
])
def test_train_folder_refuses_the_fusions_that_need_the_course_scenes(scans, fusion, needle):
    with pytest.raises(ValueError, match=needle):
        owndata.train_folder(scans, fusion=fusion, epochs=1, log=None)
