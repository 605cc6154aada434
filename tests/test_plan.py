"""Memory and compute planning (mmcourse.hub.plan, notebook 12): the parameter formula against
``count_params()`` of KerasHub models built from random tiny configs of each family, the real
presets against their published counts, the KV cache against KerasHub's own cache, and the
verdicts against hand-computed figures."""

import json

import keras_hub
import numpy as np
import pytest

from mmcourse import REPO_ROOT
from mmcourse.hub import plan

TINY_PRESET = REPO_ROOT / "docs" / "results" / "tiny_paligemma_attributes"


def _config(model):
    """What KerasHub writes to a preset's config.json, round-tripped through JSON."""
    return json.loads(json.dumps({"class_name": type(model).__name__,
                                  "config": model.get_config()}))


def _pick(rng, *choices):
    return int(rng.choice(choices))


def _vit_options(rng):
    width = _pick(rng, 8, 16)
    return dict(hidden=width, heads=_pick(rng, 1, 2), layers=_pick(rng, 1, 2),
                intermediate=_pick(rng, 12, 24), patch=_pick(rng, 4, 8))


def _clip(rng):
    v, t = _vit_options(rng), _vit_options(rng)
    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=v["patch"], hidden_dim=v["hidden"], num_layers=v["layers"],
        num_heads=v["heads"], intermediate_dim=v["intermediate"], image_shape=(16, 16, 3))
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=_pick(rng, 30, 50), embedding_dim=t["hidden"], hidden_dim=t["hidden"],
        num_layers=t["layers"], num_heads=t["heads"], intermediate_dim=t["intermediate"],
        max_sequence_length=_pick(rng, 5, 9))
    return keras_hub.models.CLIPBackbone(vision, text, projection_dim=_pick(rng, 6, 10))


def _siglip(rng):
    v, t = _vit_options(rng), _vit_options(rng)
    vision = keras_hub.models.SigLIPVisionEncoder(
        patch_size=v["patch"], hidden_dim=v["hidden"], num_layers=v["layers"],
        num_heads=v["heads"], intermediate_dim=v["intermediate"], image_shape=(16, 16, 3))
    text = keras_hub.models.SigLIPTextEncoder(
        vocabulary_size=_pick(rng, 30, 50), embedding_dim=t["hidden"], hidden_dim=t["hidden"],
        num_layers=t["layers"], num_heads=t["heads"], intermediate_dim=t["intermediate"],
        max_sequence_length=_pick(rng, 5, 9), projection_dim=_pick(rng, 6, 10))
    return keras_hub.models.SigLIPBackbone(vision, text)


def _decoder_options(rng):
    kv = _pick(rng, 1, 2)
    return dict(vocabulary_size=_pick(rng, 30, 50), num_layers=_pick(rng, 1, 2),
                num_query_heads=2 * kv, num_key_value_heads=kv, hidden_dim=_pick(rng, 12, 20),
                intermediate_dim=_pick(rng, 16, 28), head_dim=_pick(rng, 4, 8),
                use_post_ffw_norm=bool(rng.integers(2)),
                use_post_attention_norm=bool(rng.integers(2)))


def _paligemma(rng):
    v = _vit_options(rng)
    return keras_hub.models.PaliGemmaBackbone(
        image_size=16, vit_patch_size=v["patch"], vit_num_heads=v["heads"],
        vit_hidden_dim=v["hidden"], vit_num_layers=v["layers"],
        vit_intermediate_dim=v["intermediate"], **_decoder_options(rng))


def _gemma3(rng, vision=True):
    options = _decoder_options(rng)
    encoder = None
    if vision:
        v = _vit_options(rng)
        encoder = keras_hub.models.Gemma3VisionEncoder(
            image_size=16, patch_size=v["patch"], num_heads=v["heads"], hidden_dim=v["hidden"],
            num_layers=v["layers"], intermediate_dim=v["intermediate"],
            output_dim=options["hidden_dim"], pool_size=_pick(rng, 1, 2))
    return keras_hub.models.Gemma3Backbone(
        image_size=16, vision_encoder=encoder, use_query_key_norm=bool(rng.integers(2)),
        **options)


FAMILIES = {"CLIPBackbone": _clip, "SigLIPBackbone": _siglip,
            "PaliGemmaBackbone": _paligemma, "Gemma3Backbone": _gemma3,
            "Gemma3Backbone text only": lambda rng: _gemma3(rng, vision=False)}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_formula_equals_count_params_of_random_tiny_configs(family, seed):
    model = FAMILIES[family](np.random.default_rng(seed))
    counted = plan.parameter_count(_config(model))
    assert counted["family"] == type(model).__name__
    assert counted["params"] == model.count_params()


def test_image_tokens_are_what_the_models_produce():
    rng = np.random.default_rng(3)
    paligemma = _paligemma(rng)
    assert plan.parameter_count(_config(paligemma))["image_tokens"] == \
        paligemma.image_sequence_length
    gemma3 = _gemma3(rng)
    assert plan.parameter_count(_config(gemma3))["image_tokens"] == \
        gemma3.vision_encoder.num_vision_tokens_per_image
    # Published: PaliGemma at 224 px has 256 image tokens, Gemma 3 256 per image (its report).
    assert plan.parameter_count(plan.REAL_CONFIGS["pali_gemma_3b_mix_224"]["config"])[
        "image_tokens"] == 256
    assert plan.parameter_count(plan.REAL_CONFIGS["gemma3_4b"]["config"])["image_tokens"] == 256


BACKBONES = {"CLIPBackbone": keras_hub.models.CLIPBackbone,
             "SigLIPBackbone": keras_hub.models.SigLIPBackbone,
             "PaliGemmaBackbone": keras_hub.models.PaliGemmaBackbone,
             "Gemma3Backbone": keras_hub.models.Gemma3Backbone}


@pytest.mark.parametrize("name", list(plan.REAL_CONFIGS))
def test_real_presets_match_their_published_counts(name):
    counted = plan.parameter_count(plan.REAL_CONFIGS[name]["config"])
    published = BACKBONES[counted["family"]].presets[name]["metadata"]["params"]
    assert abs(counted["params"] - published) <= 0.01 * published
    assert plan.REAL_CONFIGS[name]["source"].startswith(
        BACKBONES[counted["family"]].presets[name]["kaggle_handle"].rsplit("/", 1)[0])


def test_published_counts_by_hand():
    """Literal figures from the model cards, so a wrong table cannot hide behind KerasHub."""
    counts = {name: plan.parameter_count(c["config"])["params"]
              for name, c in plan.REAL_CONFIGS.items()}
    assert counts["pali_gemma_3b_mix_224"] == pytest.approx(2.92e9, rel=0.01)
    assert counts["gemma3_4b"] == pytest.approx(4.3e9, rel=0.01)
    assert counts["clip_vit_base_patch32"] == pytest.approx(151.3e6, rel=0.01)


def test_preset_folder_and_config_file():
    metadata = json.loads((TINY_PRESET / "metadata.json").read_text())
    for model in (TINY_PRESET, TINY_PRESET / "config.json"):
        result = plan.plan(model, memory={"ram_bytes": 10 ** 9, "gpu_bytes": None})
        assert result["params"] == metadata["parameter_count"]
        assert result["image_tokens"] == 16


def test_weight_bytes_and_kv_cache_by_hand():
    result = plan.plan("pali_gemma_3b_mix_224", context=8192, batch=2,
                       memory={"ram_bytes": 16e9, "gpu_bytes": 24e9, "gpu": "test"})
    params = result["params"]
    assert result["weight_bytes"] == {"float32": 4 * params, "bfloat16": 2 * params,
                                      "int8": params, "int4": params // 2}
    # 18 layers x (K and V) x 1 KV head x 256 dims x 2 bytes (bfloat16)
    assert result["kv_cache_bytes_per_token"] == 18 * 2 * 1 * 256 * 2
    assert result["kv_cache_bytes"] == 18_432 * 8192 * 2
    assert "kv_cache_bytes" not in plan.plan("clip_vit_base_patch32", memory={})


def test_kv_cache_equals_kerashubs_cache():
    """KerasHub's own cache for the tiny PaliGemma: (batch, layers, 2, length, kv, head)."""
    model = keras_hub.models.PaliGemmaCausalLM.from_preset(str(TINY_PRESET))
    length = 24
    token_ids = np.zeros((3, length), "int32")
    images = np.zeros((3, 64, 64, 3), "float32")
    _, cache = model._build_cache(token_ids, model.backbone.vit_encoder(images),
                               np.ones((3, length), bool))
    numbers_per_token = np.prod(cache.shape) / (3 * cache.shape[3])
    result = plan.plan(TINY_PRESET, memory={})
    assert result["kv_cache_bytes_per_token"] == numbers_per_token * plan.KV_CACHE_BYTES


def test_verdicts_against_stated_memory():
    laptop = {"ram_bytes": 16 * 10 ** 9, "gpu_bytes": 8 * 10 ** 9, "gpu": "8 GB"}
    result = plan.plan("gemma3_4b", context=2048, memory=laptop)
    # 4.30e9 x 4 = 17.2 GB > 16; x 2 = 8.6 GB <= 12.8 (80 % of 16) but > 6.4 (80 % of 8)
    assert result["verdicts"]["float32"]["ram"] == "does not fit"
    assert result["verdicts"]["bfloat16"]["ram"] == "fits"
    assert result["verdicts"]["bfloat16"]["gpu"] == "does not fit"
    assert result["verdicts"]["int4"]["gpu"] == "fits"
    assert result["verdicts"]["int8"]["need_bytes"] == result["params"] + \
        result["kv_cache_bytes"]
    assert plan.plan("gemma3_4b", memory={"ram_bytes": 10 ** 9})["verdicts"]["int4"]["gpu"] == \
        "no GPU"
    assert plan.verdict(80, 100) == "fits" and plan.verdict(81, 100) == "does not fit"


def test_bad_models_and_arguments(tmp_path):
    with pytest.raises(plan.PlanError, match="neither a preset folder.*built-in names: "):
        plan.load_config("no_such_model")
    with pytest.raises(plan.PlanError, match="folder without config.json"):
        plan.load_config(tmp_path)
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(plan.PlanError, match="not valid JSON"):
        plan.load_config(bad)
    bad.write_text(json.dumps({"class_name": "BertBackbone", "config": {}}))
    with pytest.raises(plan.PlanError, match="'BertBackbone' is not a family.*Gemma3Backbone"):
        plan.plan(bad, memory={})
    bad.write_text(json.dumps({"class_name": "PaliGemmaBackbone", "config": {"hidden_dim": 8}}))
    with pytest.raises(plan.PlanError, match="lacks"):
        plan.plan(bad, memory={})
    with pytest.raises(plan.PlanError, match="context must be a positive int"):
        plan.plan("gemma3_4b", context=0, memory={})


def test_free_memory_reports_this_machine():
    memory = plan.free_memory()
    assert memory["ram_bytes"] > 0
    assert (memory["gpu"] is None) == (memory["gpu_bytes"] is None)


def test_free_memory_reads_nvidia_smi(tmp_path, monkeypatch):
    """A stand-in nvidia-smi on the PATH, printing what the real one prints for the query."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 81000'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    memory = plan.free_memory()
    assert memory["gpu"] == "NVIDIA H100 80GB HBM3" and memory["gpu_bytes"] == 81000 * 2 ** 20
    # 80 GB GPU: PaliGemma 3B in float32 (11.7 GB) fits
    result = plan.plan("pali_gemma_3b_mix_224", memory=memory)
    assert result["verdicts"]["float32"]["gpu"] == "fits"
    smi.write_text("#!/bin/sh\nexit 9\n")  # a broken driver: no GPU figure, no crash
    assert plan.free_memory()["gpu_bytes"] is None
