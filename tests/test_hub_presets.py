"""Tiny KerasHub presets made offline (mmcourse.hub.presets, notebook 11): the SentencePiece
tokenizer on the course's captions (mmcourse.train.tokenizer), the tiny PaliGemma and CLIP,
and preset folders."""

import keras_hub
import numpy as np
import pytest
import requests

from mmcourse import hub
from mmcourse.hub import presets as hub_presets
from mmcourse.train import tokenizer as course_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return course_tokenizer.train_tokenizer()


def _pieces(tokenizer, text):
    return [tokenizer.id_to_token(int(i)) for i in np.asarray(tokenizer.tokenize(text))]


def test_tokenizer_has_gemmas_special_tokens(tokenizer):
    assert tokenizer.vocabulary_size() == 192
    for piece, index in {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}.items():
        assert tokenizer.token_to_id(piece) == index
    assert (tokenizer.pad_token_id, tokenizer.end_token_id, tokenizer.start_token_id) == (0, 1, 2)


def test_tokenizer_splits_words_english_and_chinese(tokenizer):
    assert _pieces(tokenizer, "a large cyan triangle") == ["▁a", "▁large", "▁cyan", "▁triangle"]
    assert _pieces(tokenizer, "一个小的红色圆形") == ["▁一个", "小的", "红色", "圆形"]
    # An unseen word is cut into known smaller pieces, not one unknown token; a character
    # never seen (no byte fallback at this size) is <unk>.
    pieces = _pieces(tokenizer, "a small purple circle")
    assert len(pieces) > 4 and "<unk>" not in pieces and "▁circle" in pieces
    assert "<unk>" in _pieces(tokenizer, "a box")
    text = "left to right: a small red circle, a large blue square"
    assert tokenizer.detokenize(tokenizer.tokenize(text)) == text


def test_mark_chinese_words():
    assert course_tokenizer.mark_chinese_words("从左到右：品红色方形，黄色方形") == \
        "从左到右|：|品红色|方形|，|黄色|方形"
    assert course_tokenizer.mark_chinese_words("a large cyan square") == "a large cyan square"


def test_sentencepiece_is_deterministic_and_checks_arguments():
    texts = ["a red circle", "a blue square", "一个小的红色圆形"] * 20
    first = course_tokenizer.train_sentencepiece(texts, vocabulary_size=40)
    assert first == course_tokenizer.train_sentencepiece(texts, vocabulary_size=40)
    with pytest.raises(ValueError, match="model_type must be"):
        course_tokenizer.train_sentencepiece(texts, model_type="wordpiece")
    with pytest.raises(ValueError, match="vocabulary_size must be an int"):
        course_tokenizer.train_sentencepiece(texts, vocabulary_size=2)


def test_tiny_clip_numbers_its_positions():
    backbone = hub_presets.tiny_clip(vocabulary_size=50, num_layers=1)
    ids = backbone.vision_encoder.embedding.position_ids.numpy()
    np.testing.assert_array_equal(ids, np.arange(65)[None])  # (64 / 8)^2 patches + class
    images = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    token_ids = np.array([[5, 9, 49, 0], [7, 49, 0, 0]], "int32")
    image_embeddings, text_embeddings = hub.clip_by_hand(backbone, images, token_ids)
    np.testing.assert_allclose(image_embeddings, backbone.get_vision_embeddings(images),
                               atol=1e-4)
    np.testing.assert_allclose(text_embeddings, backbone.get_text_embeddings(token_ids),
                               atol=1e-4)
    with pytest.raises(ValueError, match=r"unknown tiny_clip option\(s\) \['depth'\]"):
        hub_presets.tiny_clip(50, depth=3)


def test_paligemma_preset_round_trip(tokenizer, tmp_path):
    model = hub_presets.tiny_paligemma(tokenizer, num_layers=1, vit_num_layers=1)
    images = np.random.default_rng(1).integers(0, 256, size=(2, 64, 64, 3)).astype("uint8")
    request = {"images": images, "prompts": [hub_presets.PROMPTS["en"]] * 2}
    folder = hub_presets.save_preset(model, tmp_path / "tiny_paligemma_course")
    for name in ("config.json", "model.weights.h5", "preprocessor.json", "task.json"):
        assert (folder / name).is_file(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_paligemma_course"]
    loaded = hub_presets.load_preset(keras_hub.models.PaliGemmaCausalLM, folder)
    assert loaded.generate(request, max_length=12) == model.generate(request, max_length=12)
    for a, b in zip(model.backbone.weights, loaded.backbone.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert loaded.preprocessor.tokenizer.vocabulary_size() == 192


def test_save_preset_refuses_builtin_names_and_replaces_atomically(tmp_path, monkeypatch):
    backbone = hub_presets.tiny_clip(vocabulary_size=50, num_layers=1)
    with pytest.raises(ValueError, match="named like KerasHub's built-in preset"):
        hub_presets.save_preset(backbone, tmp_path / "clip_vit_base_patch32")
    folder = hub_presets.save_preset(backbone, tmp_path / "mine")
    before = (folder / "model.weights.h5").read_bytes()

    def broken(path):
        (__import__("pathlib").Path(path) / "config.json").write_text("{")
        raise OSError("disk full")

    monkeypatch.setattr(backbone, "save_to_preset", broken)
    with pytest.raises(OSError, match="disk full"):
        hub_presets.save_preset(backbone, folder)
    assert (folder / "model.weights.h5").read_bytes() == before  # the old preset is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no half-written folder


def test_load_preset_errors_are_clear(tmp_path, monkeypatch):
    cls = keras_hub.models.CLIPBackbone
    with pytest.raises(FileNotFoundError, match="neither a local preset folder"):
        hub_presets.load_preset(cls, tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        hub_presets.load_preset(cls, tmp_path / "empty")

    def offline(preset):  # what KerasHub raises without a network (never really called)
        raise requests.exceptions.ConnectionError("Failed to resolve 'api.kaggle.com'")

    monkeypatch.setattr(cls, "from_preset", offline)
    with pytest.raises(ConnectionError, match=r"about 0.6 GB.*HF_ENDPOINT"):
        hub_presets.load_preset(cls, "clip_vit_base_patch32")
