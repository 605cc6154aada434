"""``python -m mmcourse zero-shot`` on a tiny KerasHub CLIP preset, and offline with a real
preset name (mmcourse.apps.zero_shot, notebook 12). The references are KerasHub's own CLIP head
(its logits for one template per label) and the NumPy forward pass of ``hub.clip_by_hand``
(for prompt ensembling)."""

import json

import cv2
import keras
import keras_hub
import numpy as np
import pytest
import requests

from mmcourse import REPO_ROOT, clip, hub
from mmcourse.__main__ import main
from mmcourse.apps import photos, zero_shot
from mmcourse.data import scenes as data
from mmcourse.data import text
from mmcourse.hub import presets as hub_presets
from mmcourse.train import clip as clip_training

LABELS = ["small red circle", "large blue square", "small green triangle"]
WORDS = text.load_vocabulary()[2:] + ["photo", "picture", "drawing"]


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    """A tiny CLIP preset with random weights: backbone, tokenizer and image converter."""
    tokenizer = hub_presets.clip_tokenizer(WORDS)
    backbone = hub_presets.tiny_clip(tokenizer.vocabulary_size(), seed=1)
    folder = tmp_path_factory.mktemp("presets") / "tiny_clip_random"
    return hub_presets.save_preset(backbone, folder,
                                   hub_presets.tiny_clip_preprocessor(tokenizer))


@pytest.fixture(scope="module")
def model(preset):
    return zero_shot.load_clip(preset)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    scene_images, _, _ = data.load_arrays("retrieval", "attributes", "test")
    for index, name in enumerate(["b.png", "a.jpg", "c.PNG", "d.png"]):
        image = cv2.resize(scene_images[index], (128, 96))  # not square, not the model's size
        cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not a photo")
    return folder


def _zero_shot_json(capsys, preset, folder, labels, *extra):
    assert main(["zero-shot", "--model", str(preset), "--images", str(folder), "--labels",
                 ",".join(labels), *extra, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _normalise(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_one_template_gives_the_softmax_of_kerashub_clip_logits(preset, model, photo_folder,
                                                                capsys):
    result = _zero_shot_json(capsys, preset, photo_folder, LABELS, "--template", "a {}")
    assert [row["image"] for row in result["results"]] == ["a.jpg", "b.png", "c.PNG", "d.png"]
    assert result["labels"] == LABELS and result["templates"] == ["a {}"]
    probabilities = np.array([row["probabilities"] for row in result["results"]])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert [row["label"] for row in result["results"]] == \
        [LABELS[i] for i in probabilities.argmax(axis=1)]
    # KerasHub's CLIPBackbone: its head's logits (exp(logit_scale) x cosine) of each photo
    # against each label's prompt
    _, pixels = photos.read_photos(photo_folder, 64)
    prompts = [f"a {label}" for label in LABELS]
    token_ids = model.preprocessor({"prompts": prompts, "images": None})["token_ids"]
    logits = model.backbone({"images": model.preprocessor.image_converter(pixels),
                             "token_ids": token_ids})["vision_logits"]
    expected = np.asarray(keras.ops.softmax(logits, axis=-1))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert np.ptp(probabilities) > 1e-3  # not uniform: order and value are tested


def test_label_order_is_kept(preset, photo_folder, capsys):
    first = _zero_shot_json(capsys, preset, photo_folder, LABELS)
    order = [2, 0, 1]
    second = _zero_shot_json(capsys, preset, photo_folder, [LABELS[i] for i in order])
    p1 = np.array([row["probabilities"] for row in first["results"]])
    p2 = np.array([row["probabilities"] for row in second["results"]])
    np.testing.assert_allclose(p2, p1[:, order], atol=1e-6)
    assert not np.allclose(p2, p1, atol=1e-4)  # the permutation is visible
    assert [r["label"] for r in first["results"]] == [r["label"] for r in second["results"]]


def test_prompt_ensembling_is_the_mean_of_normalised_text_embeddings(model):
    templates = ["a {}", "there is a {}", "a photo of a {} ."]
    ours = zero_shot.label_embeddings(model, LABELS, templates)
    prompts = [template.format(label) for label in LABELS for template in templates]
    token_ids = np.asarray(model.preprocessor({"prompts": prompts, "images": None})["token_ids"])
    by_hand = hub.clip_text_by_hand(model.backbone, token_ids).reshape(len(LABELS),
                                                                        len(templates), -1)
    expected = _normalise(_normalise(by_hand).mean(axis=1))
    np.testing.assert_allclose(ours, expected, atol=1e-4)
    # the embeddings' norms differ, so averaging them unnormalised would be caught
    assert np.ptp(np.linalg.norm(by_hand, axis=-1)) > 0.01
    assert not np.allclose(_normalise(by_hand.mean(axis=1)), expected, atol=1e-3)


def test_probabilities_equal_a_numpy_computation(model, photo_folder, preset, capsys):
    templates = ["a {}", "there is a {}"]
    extra = [flag for template in templates for flag in ("--template", template)]
    result = _zero_shot_json(capsys, preset, photo_folder, LABELS, *extra)
    assert result["templates"] == templates
    probabilities = np.array([row["probabilities"] for row in result["results"]])
    _, pixels = photos.read_photos(photo_folder, 64)
    images = np.asarray(model.preprocessor.image_converter(pixels))
    prompts = [template.format(label) for label in LABELS for template in templates]
    token_ids = np.asarray(model.preprocessor({"prompts": prompts, "images": None})["token_ids"])
    image_embeddings = hub.clip_vision_by_hand(model.backbone, images)
    text_embeddings = hub.clip_text_by_hand(model.backbone, token_ids)
    classes = _normalise(_normalise(text_embeddings).reshape(len(LABELS), len(templates),
                                                             -1).mean(axis=1))
    scale = np.exp(float(model.backbone.clip_head.logit_scale.numpy()))
    scores = scale * _normalise(image_embeddings) @ classes.T
    expected = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)


def test_table_lists_each_photo_with_its_labels_in_order(preset, photo_folder, capsys):
    assert main(["zero-shot", "--model", str(preset), "--images", str(photo_folder),
                 "--labels", ",".join(LABELS)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("  ")[0].strip() == "image"
    header = lines[0]
    assert [header.index(label) for label in LABELS] == sorted(header.index(label)
                                                               for label in LABELS)
    assert header.rstrip().endswith("top")
    assert [line.split()[0] for line in lines[1:]] == ["a.jpg", "b.png", "c.PNG", "d.png"]
    for line in lines[1:]:
        values = [float(v) for v in line.split()[1:1 + len(LABELS)]]
        assert abs(sum(values) - 1) < 2e-3
        assert line.endswith(LABELS[int(np.argmax(values))])


def test_labels_and_templates_are_checked():
    assert zero_shot.parse_labels(" cat , dog ") == ["cat", "dog"]
    assert zero_shot.parse_labels("猫，狗,鸟") == ["猫", "狗", "鸟"]  # a Chinese comma too
    for bad, needle in (("", "an empty label"), ("cat", "at least two"),
                        ("cat,dog,", "an empty label"), ("dog,DOG", "given twice")):
        with pytest.raises(ValueError, match=needle):
            zero_shot.parse_labels(bad)
    assert zero_shot.check_templates("a {{fancy}} {}") == ["a {{fancy}} {}"]
    for bad in ("a photo", "a {} of {}", "a {label}", "{0}"):
        with pytest.raises(ValueError, match="must hold"):
            zero_shot.check_templates(bad)
    with pytest.raises(ValueError, match="at least one template"):
        zero_shot.check_templates([])


def test_clip_tokenizer_keeps_words_whole_and_the_end_token_last():
    tokenizer = hub_presets.clip_tokenizer(WORDS)
    end = tokenizer.end_token_id
    assert end == tokenizer.vocabulary_size() - 1  # CLIP's pooler reads argmax(token_ids)
    for word in WORDS:
        assert len(np.asarray(tokenizer.tokenize(word))) == 1, word
    # any text, Chinese and unseen words too, is tokenized without the end token (which is
    # also the unknown token: a text that produced it would be read out in its middle)
    ids = np.asarray(tokenizer.tokenize("a zebra 斑马, 3 cats!"))
    assert end not in ids and len(ids) > 4
    assert tokenizer.detokenize(ids).replace(" ", "") == "azebra斑马,3cats!"
    with pytest.raises(ValueError, match="letters only"):
        hub_presets.clip_tokenizer(["red", "two words"])


def test_bad_photo_and_empty_folder_are_named(preset, tmp_path, capsys):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    assert main(["zero-shot", "--model", str(preset), "--images", str(tmp_path),
                 "--labels", "cat,dog"]) == 1
    err = capsys.readouterr().err
    assert "argument --images" in err and "broken.png" in err and "Traceback" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a photo")
    assert main(["zero-shot", "--model", str(preset), "--images", str(empty),
                 "--labels", "cat,dog"]) == 1
    assert "argument --images" in capsys.readouterr().err


def test_real_preset_offline_says_what_caption_says(photo_folder, monkeypatch, capsys):
    def offline(*args, **kwargs):  # what KerasHub raises without a network
        raise requests.exceptions.ConnectionError("Failed to resolve 'api.kaggle.com'")

    monkeypatch.setattr(keras_hub.models.CLIPBackbone, "from_preset", offline)
    monkeypatch.setattr(keras_hub.models.PaliGemmaCausalLM, "from_preset", offline)
    assert main(["zero-shot", "--model", "clip_vit_base_patch32", "--images",
                 str(photo_folder), "--labels", "cat,dog"]) == 1
    captured = capsys.readouterr()
    err = captured.err
    assert captured.out == "" and "Traceback" not in err
    for needle in ("argument --model", "clip_vit_base_patch32", "about 0.6 GB", "modelscope://",
                   "HF_ENDPOINT", "tiny presets need no network"):
        assert needle in err, err
    assert main(["caption", "--model", "pali_gemma_3b_mix_224", "--images",
                 str(photo_folder)]) == 1
    caption_err = capsys.readouterr().err
    assert err.replace("clip_vit_base_patch32", "NAME").replace("0.6", "SIZE") == \
        caption_err.replace("pali_gemma_3b_mix_224", "NAME").replace("5.9", "SIZE")


@pytest.mark.slow
def test_preset_is_plain_kerashub_and_training_fits_through_its_preprocessor(tmp_path):
    """``hub_clip.fit_clip_backbone`` trains the backbone in place on captions through its
    own preprocessor; saved with it, the preset loads with KerasHub's own classes and gives
    the same embeddings."""
    from mmcourse.train import hub_clip

    tokenizer = hub_presets.clip_tokenizer(WORDS)
    backbone = hub_presets.tiny_clip(tokenizer.vocabulary_size(), seed=2)
    preprocessor = hub_presets.tiny_clip_preprocessor(tokenizer)
    images, captions, _ = data.load_arrays("retrieval", "attributes", "train")
    images, captions = images[:32], captions[:32]
    batch = preprocessor({"prompts": captions, "images": images})
    caption_ids = np.unique(captions, return_inverse=True)[1]

    def loss():  # notebook 07's loss on the batch, unflipped, duplicates counted as positives
        logits = backbone({"images": batch["images"], "token_ids": batch["token_ids"]})
        return float(np.mean(clip.contrastive_loss_per_pair(logits["vision_logits"],
                                                             caption_ids)))

    before, scale = loss(), float(backbone.clip_head.logit_scale.numpy())
    hub_clip.fit_clip_backbone(backbone, preprocessor, images, captions, epochs=6,
                               batch_size=32)
    assert loss() < before - 0.1 and float(backbone.clip_head.logit_scale.numpy()) != scale
    folder = hub_presets.save_preset(backbone, tmp_path / "trained", preprocessor)
    loaded = keras_hub.models.CLIPBackbone.from_preset(str(folder))
    loaded_preprocessor = keras_hub.models.CLIPPreprocessor.from_preset(str(folder))
    batch = loaded_preprocessor({"prompts": captions[:4], "images": images[:4]})  # reloaded
    np.testing.assert_allclose(np.asarray(loaded.get_text_embeddings(batch["token_ids"])),
                               np.asarray(backbone.get_text_embeddings(batch["token_ids"])),
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(loaded.get_vision_embeddings(batch["images"])),
                               np.asarray(backbone.get_vision_embeddings(
                                   preprocessor.image_converter(images[:4]))), atol=1e-6)
    with pytest.raises(ValueError, match="same length"):
        hub_clip.fit_clip_backbone(backbone, preprocessor, images[:3], captions[:2])


def test_committed_tiny_preset_scores_what_its_table_says():
    """docs/results/tiny_clip_attributes (make_tiny_clip_preset.py): zero-shot over the 36
    size-colour-shape labels with the default templates, on the test split's seen
    combinations, as zero_shot_table.json states, and far above chance (1/36)."""
    table = json.loads((REPO_ROOT / "docs" / "results" / "zero_shot_table.json").read_text())
    model = zero_shot.load_clip(REPO_ROOT / table["preset"])
    labels = [" ".join(c) for c in clip_training.attribute_classes()]
    images, _, _ = data.load_arrays("retrieval", "attributes", "test")
    scenes = data.load_records("scenes", "attributes", "test")
    seen = np.array([not clip_training.is_heldout(s) for s in scenes])
    truth = np.array([labels.index(" ".join(clip_training.scene_class(s))) for s in scenes])[seen]
    probabilities = zero_shot.zero_shot_probabilities(model, images[seen], labels)
    accuracy = float((probabilities.argmax(axis=1) == truth).mean())
    assert abs(accuracy - table["zero_shot_accuracy_seen"]) <= 1 / seen.sum()
    assert table["chance"] == pytest.approx(1 / 36)
    assert accuracy > 0.5 and table["zero_shot_accuracy_heldout"] > 0.25
    assert table["preset_bytes"] < 5e6
