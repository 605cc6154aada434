"""Will a model fit? Parameters, weight bytes, KV cache and image tokens from a KerasHub
config, by formula, without building the model (notebook 12; ``python -m mmcourse plan``).

A model is named by a local preset folder (its ``config.json``), a KerasHub ``config.json``
file, or a built-in preset name from ``REAL_CONFIGS``: the configs of real presets, copied
from their ``config.json`` on Kaggle (``kaggle://keras/<model>/keras/<preset>``, the handle
``keras_hub.models.<Backbone>.presets[name]["kaggle_handle"]`` gives). ``parameter_count``
follows the weights KerasHub 0.32 creates for each family (CLIP, SigLIP, PaliGemma, Gemma 3),
``count_params()`` included (CLIP's and SigLIP's ``position_ids`` count, as there). Tests
compare it with ``count_params()`` of models built from random tiny configs, and with the
published counts (``presets[name]["metadata"]["params"]``) for the real presets.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

#: Bytes per weight in each storage type (int4 packs two weights in a byte).
DTYPE_BYTES = {"float32": 4.0, "bfloat16": 2.0, "int8": 1.0, "int4": 0.5}
#: Bytes per number in the KV cache (KerasHub keeps it in the compute dtype, bfloat16 here).
KV_CACHE_BYTES = 2
#: Fraction of free memory a plan may fill: activations, the framework and fragmentation
#: need the rest. A rule of thumb, not a measurement.
HEADROOM = 0.8
#: The families ``parameter_count`` knows, by the backbone's class name.
FAMILIES = ("CLIPBackbone", "SigLIPBackbone", "PaliGemmaBackbone", "Gemma3Backbone")

_CLIP_SOURCE = "kaggle://keras/clip/keras/{}/3 config.json (OpenAI CLIP, Radford et al. 2021)"
_SIGLIP_SOURCE = "kaggle://keras/siglip/keras/{}/1 config.json (Zhai et al. 2023)"
_PALIGEMMA_SOURCE = "kaggle://keras/paligemma/keras/{}/4 config.json (Beyer et al. 2024)"
_GEMMA3_SOURCE = ("kaggle://keras/gemma3/keras/{}/1 config.json (Gemma 3 technical report, "
                  "2025)")


def _clip_config(patch, width, layers, heads, text_width, text_layers, text_heads, projection):
    return {"class_name": "CLIPBackbone", "config": {
        "vision_encoder": {"class_name": "CLIPVisionEncoder", "config": {
            "patch_size": patch, "hidden_dim": width, "num_layers": layers,
            "num_heads": heads, "intermediate_dim": 4 * width, "image_shape": [224, 224, 3]}},
        "text_encoder": {"class_name": "CLIPTextEncoder", "config": {
            "vocabulary_size": 49408, "embedding_dim": text_width, "hidden_dim": text_width,
            "num_layers": text_layers, "num_heads": text_heads,
            "intermediate_dim": 4 * text_width, "max_sequence_length": 77}},
        "projection_dim": projection}}


#: Real presets: name -> {"source", "config"} (the config.json's class_name and config,
#: trimmed to the keys that set weight shapes).
REAL_CONFIGS = {
    "clip_vit_base_patch32": {"source": _CLIP_SOURCE.format("clip_vit_base_patch32"),
                              "config": _clip_config(32, 768, 12, 12, 512, 12, 8, 512)},
    "clip_vit_large_patch14": {"source": _CLIP_SOURCE.format("clip_vit_large_patch14"),
                               "config": _clip_config(14, 1024, 24, 16, 768, 12, 12, 768)},
    "siglip_base_patch16_224": {
        "source": _SIGLIP_SOURCE.format("siglip_base_patch16_224"),
        "config": {"class_name": "SigLIPBackbone", "config": {
            "vision_encoder": {"class_name": "SigLIPVisionEncoder", "config": {
                "patch_size": 16, "hidden_dim": 768, "num_layers": 12, "num_heads": 12,
                "intermediate_dim": 3072, "image_shape": [224, 224, 3]}},
            "text_encoder": {"class_name": "SigLIPTextEncoder", "config": {
                "vocabulary_size": 32000, "embedding_dim": 768, "hidden_dim": 768,
                "num_layers": 12, "num_heads": 12, "intermediate_dim": 3072,
                "max_sequence_length": 64, "projection_dim": 768}}}}},
    "pali_gemma_3b_mix_224": {
        "source": _PALIGEMMA_SOURCE.format("pali_gemma_3b_mix_224"),
        "config": {"class_name": "PaliGemmaBackbone", "config": {
            "vocabulary_size": 257152, "image_size": 224, "num_layers": 18,
            "num_query_heads": 8, "num_key_value_heads": 1, "hidden_dim": 2048,
            "intermediate_dim": 32768, "head_dim": 256, "vit_patch_size": 14,
            "vit_num_heads": 16, "vit_hidden_dim": 1152, "vit_num_layers": 27,
            "vit_intermediate_dim": 4304}}},
    "gemma3_4b": {
        "source": _GEMMA3_SOURCE.format("gemma3_4b"),
        "config": {"class_name": "Gemma3Backbone", "config": {
            "vocabulary_size": 262144, "image_size": 896, "num_layers": 34,
            "num_query_heads": 8, "num_key_value_heads": 4, "hidden_dim": 2560,
            "intermediate_dim": 10240, "head_dim": 256, "use_query_key_norm": True,
            "use_post_ffw_norm": True, "use_post_attention_norm": True,
            "vision_encoder": {"class_name": "Gemma3VisionEncoder", "config": {
                "image_size": 896, "patch_size": 14, "num_heads": 16, "hidden_dim": 1152,
                "num_layers": 27, "intermediate_dim": 4304, "output_dim": 2560,
                "pool_size": 4}}}}},
}


class PlanError(ValueError):
    """A model name or config that ``plan`` cannot read; the message says what was expected."""


def load_config(model) -> tuple[dict, str]:
    """``(config, source)`` for ``model``: a built-in name of ``REAL_CONFIGS``, a preset
    folder holding ``config.json``, or a ``config.json`` file. ``config`` has the file's
    ``class_name`` and ``config`` keys. Notebook 12."""
    name = str(model)
    if name in REAL_CONFIGS:
        return REAL_CONFIGS[name]["config"], REAL_CONFIGS[name]["source"]
    path = Path(name)
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise PlanError(f"{name!r} is a folder without config.json; give a preset "
                            "folder (written by save_preset) or its config.json")
    if not path.is_file():
        raise PlanError(f"{name!r} is neither a preset folder, a config.json file nor a "
                        f"built-in name; built-in names: {', '.join(REAL_CONFIGS)}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PlanError(f"{name!r}: {path.name} is not valid JSON ({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict) \
            or not isinstance(config.get("class_name"), str):
        raise PlanError(f"{name!r}: {path.name} is not a KerasHub config (expected an "
                        "object with 'class_name' and 'config')")
    return config, str(path)


def _get(config: dict, key: str, where: str):
    if key not in config:
        raise PlanError(f"{where} config lacks {key!r}")
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PlanError(f"{where} config: {key} must be a positive int, got {value!r}")
    return value


def _encoder_blocks(layers: int, width: int, intermediate: int) -> int:
    """Pre-norm transformer encoder blocks with biases: attention (4 projections), two
    LayerNorms, a two-layer MLP."""
    attention = 4 * (width * width + width)
    norms = 2 * 2 * width
    mlp = width * intermediate + intermediate + intermediate * width + width
    return layers * (attention + norms + mlp)


def _image_side(config: dict, where: str) -> int:
    shape = config.get("image_shape", [224, 224, 3])
    if not isinstance(shape, (list, tuple)) or len(shape) != 3 or shape[0] != shape[1]:
        raise PlanError(f"{where} config: image_shape must be [size, size, 3], got {shape!r}")
    return int(shape[0])


def _clip(config: dict) -> dict:
    vision = config["vision_encoder"]["config"]
    text = config["text_encoder"]["config"]
    w, p = _get(vision, "hidden_dim", "CLIP vision"), _get(vision, "patch_size", "CLIP vision")
    positions = (_image_side(vision, "CLIP vision") // p) ** 2 + 1  # + the class token
    vision_params = (w + positions  # class embedding, position_ids
                     + p * p * 3 * w + positions * w + 2 * w  # patches, positions, pre-norm
                     + _encoder_blocks(_get(vision, "num_layers", "CLIP vision"), w,
                                       _get(vision, "intermediate_dim", "CLIP vision"))
                     + 2 * w)
    e, t = _get(text, "embedding_dim", "CLIP text"), _get(text, "hidden_dim", "CLIP text")
    text_params = ((_get(text, "vocabulary_size", "CLIP text")
                    + _get(text, "max_sequence_length", "CLIP text")) * e
                   + _encoder_blocks(_get(text, "num_layers", "CLIP text"), t,
                                     _get(text, "intermediate_dim", "CLIP text")) + 2 * t)
    projection = _get(config, "projection_dim", "CLIP")
    return {"params": vision_params + text_params + (w + t) * projection + 1,
            "image_tokens": positions}


def _siglip(config: dict) -> dict:
    vision = config["vision_encoder"]["config"]
    text = config["text_encoder"]["config"]
    w, p = _get(vision, "hidden_dim", "SigLIP vision"), _get(vision, "patch_size",
                                                             "SigLIP vision")
    i = _get(vision, "intermediate_dim", "SigLIP vision")
    positions = (_image_side(vision, "SigLIP vision") // p) ** 2
    head = w + 4 * (w * w + w) + 2 * w + (w * i + i + i * w + w)  # attention-pooling head
    vision_params = (positions + p * p * 3 * w + w + positions * w
                     + _encoder_blocks(_get(vision, "num_layers", "SigLIP vision"), w, i)
                     + 2 * w + head)
    e, t = _get(text, "embedding_dim", "SigLIP text"), _get(text, "hidden_dim", "SigLIP text")
    length = _get(text, "max_sequence_length", "SigLIP text")
    projection = text.get("projection_dim") or t
    text_params = (length + (_get(text, "vocabulary_size", "SigLIP text") + length) * e
                   + _encoder_blocks(_get(text, "num_layers", "SigLIP text"), t,
                                     _get(text, "intermediate_dim", "SigLIP text"))
                   + 2 * t + t * projection + projection)
    return {"params": vision_params + text_params + 2, "image_tokens": positions}


def _gemma_decoder(config: dict, where: str, gate_reduction: int, query_key_norm: bool) -> dict:
    d, heads = _get(config, "hidden_dim", where), _get(config, "num_query_heads", where)
    kv_heads, head_dim = _get(config, "num_key_value_heads", where), _get(config, "head_dim",
                                                                          where)
    layers, ffn = _get(config, "num_layers", where), \
        _get(config, "intermediate_dim", where) // gate_reduction
    norms = (2 + bool(config.get("use_post_attention_norm"))
             + bool(config.get("use_post_ffw_norm"))) * d
    block = (norms + 2 * heads * d * head_dim + 2 * kv_heads * d * head_dim
             + 3 * d * ffn + (2 * head_dim if query_key_norm else 0))
    return {"params": _get(config, "vocabulary_size", where) * d + layers * block + d,
            "kv_cache_numbers_per_token": 2 * layers * kv_heads * head_dim}


def _vit(width: int, patch: int, image: int, layers: int, intermediate: int) -> int:
    """The SigLIP-style ViT of PaliGemma and Gemma 3: biased patches, learned positions,
    blocks, a final LayerNorm."""
    positions = (image // patch) ** 2
    return (patch * patch * 3 * width + width + positions * width
            + _encoder_blocks(layers, width, intermediate) + 2 * width)


def _paligemma(config: dict) -> dict:
    where = "PaliGemma"
    decoder = _gemma_decoder(config, where, gate_reduction=2, query_key_norm=False)
    w, p, image = _get(config, "vit_hidden_dim", where), _get(config, "vit_patch_size", where), \
        _get(config, "image_size", where)
    if config.get("vit_pooling"):
        raise PlanError("PaliGemma config: vit_pooling is not counted by plan; expected null")
    vision = _vit(w, p, image, _get(config, "vit_num_layers", where),
                  _get(config, "vit_intermediate_dim", where))
    projector = w * config["hidden_dim"] + config["hidden_dim"]
    return {**decoder, "params": decoder["params"] + vision + projector,
            "image_tokens": (image // p) ** 2}


def _gemma3(config: dict) -> dict:
    if config.get("is_embedding_model"):
        raise PlanError("Gemma3 config: embedding models (is_embedding_model) are not counted "
                        "by plan; expected a causal LM backbone")
    decoder = _gemma_decoder(config, "Gemma3", gate_reduction=1,
                             query_key_norm=config.get("use_query_key_norm", True))
    encoder = config.get("vision_encoder")
    if not encoder:
        return decoder
    vision = encoder["config"]
    where = "Gemma3 vision"
    w, p, image = _get(vision, "hidden_dim", where), _get(vision, "patch_size", where), \
        _get(vision, "image_size", where)
    pool = _get(vision, "pool_size", where)
    params = (_vit(w, p, image, _get(vision, "num_layers", where),
                   _get(vision, "intermediate_dim", where))
              + w + w * _get(vision, "output_dim", where))  # soft-embedding norm, projection
    return {**decoder, "params": decoder["params"] + params,
            "image_tokens": (image // p) ** 2 // pool ** 2}


_COUNTERS = {"CLIPBackbone": _clip, "SigLIPBackbone": _siglip,
             "PaliGemmaBackbone": _paligemma, "Gemma3Backbone": _gemma3}
#: Tasks whose preset folder holds the backbone's config under ``config["backbone"]``.
_TASK_SUFFIXES = ("CausalLM",)


def _backbone_config(config: dict) -> tuple[str, dict]:
    class_name, inner = config["class_name"], config["config"]
    if class_name not in _COUNTERS and isinstance(inner.get("backbone"), dict):
        return _backbone_config(inner["backbone"])
    if class_name not in _COUNTERS:
        raise PlanError(f"class {class_name!r} is not a family plan counts; expected one of "
                        f"{', '.join(FAMILIES)}")
    return class_name, inner


def parameter_count(config: dict) -> dict:
    """``{"family", "params"}`` (plus ``image_tokens`` for image encoders and VLMs, and
    ``kv_cache_numbers_per_token`` for decoders) of a KerasHub backbone config (a
    ``config.json``'s object: ``class_name`` and ``config``), by formula. Notebook 12."""
    family, inner = _backbone_config(config)
    try:
        counted = _COUNTERS[family](inner)
    except (KeyError, TypeError) as error:
        raise PlanError(f"{family} config is incomplete or malformed ({error!r})") from None
    return {"family": family, **counted}


def free_memory() -> dict:
    """``{"ram_bytes": available RAM, "gpu_bytes": free memory of the first GPU or None,
    "gpu": its name or None}``; the GPU is read with ``nvidia-smi`` when it is on the PATH
    (TensorFlow is not imported). Notebook 12."""
    import psutil  # noqa: PLC0415

    result = {"ram_bytes": int(psutil.virtual_memory().available), "gpu_bytes": None,
              "gpu": None}
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            line = subprocess.run(
                [smi, "--query-gpu=name,memory.free", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=10, check=True).stdout.splitlines()[0]
            name, mib = line.rsplit(",", 1)
            result.update(gpu=name.strip(), gpu_bytes=int(float(mib)) * 2 ** 20)
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            pass
    return result


def verdict(need_bytes: float, free_bytes) -> str:
    """"fits" when ``need_bytes`` <= ``HEADROOM`` x ``free_bytes``, else "does not fit";
    "unknown" without a figure for the free memory. Notebook 12."""
    if free_bytes is None:
        return "unknown"
    return "fits" if need_bytes <= HEADROOM * free_bytes else "does not fit"


def plan(model, context: int = 2048, batch: int = 1, memory: dict | None = None) -> dict:
    """The plan of ``model`` (``load_config``'s forms) for ``batch`` sequences of ``context``
    tokens: ``params``, ``weight_bytes`` per dtype (``DTYPE_BYTES``), for decoders
    ``kv_cache_bytes_per_token`` and ``kv_cache_bytes`` (bfloat16), for image models
    ``image_tokens`` per image, and ``verdicts``: per dtype, whether weights plus KV cache fit
    the free RAM and GPU memory of ``memory`` (default: this machine, ``free_memory()``).
    Notebook 12."""
    for name, value in (("context", context), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PlanError(f"{name} must be a positive int, got {value!r}")
    config, source = load_config(model)
    counted = parameter_count(config)
    params = counted["params"]
    result = {"model": str(model), "source": source, "family": counted["family"],
              "params": params, "context": context, "batch": batch,
              "weight_bytes": {dtype: int(params * size) for dtype, size in DTYPE_BYTES.items()}}
    cache = 0
    if "kv_cache_numbers_per_token" in counted:
        per_token = counted["kv_cache_numbers_per_token"] * KV_CACHE_BYTES
        cache = per_token * context * batch
        result.update(kv_cache_bytes_per_token=per_token, kv_cache_bytes=cache)
    if "image_tokens" in counted:
        result["image_tokens"] = counted["image_tokens"]
    memory = free_memory() if memory is None else memory
    result["memory"] = memory
    result["verdicts"] = {
        dtype: {"need_bytes": need, "ram": verdict(need, memory.get("ram_bytes")),
                "gpu": verdict(need, memory.get("gpu_bytes"))
                if memory.get("gpu_bytes") is not None else "no GPU"}
        for dtype, need in ((d, b + cache) for d, b in result["weight_bytes"].items())}
    return result


def _gb(n) -> str:
    return "-" if n is None else f"{n / 1e9:.2f} GB"


def format_plan(result: dict) -> str:
    """``plan``'s result as lines of text. Notebook 12."""
    lines = [f"{result['model']} ({result['family']}): {result['params']:,} parameters",
             f"  config: {result['source']}"]
    if "image_tokens" in result:
        lines.append(f"  image tokens per image: {result['image_tokens']}")
    if "kv_cache_bytes" in result:
        lines.append(f"  KV cache (bfloat16): {result['kv_cache_bytes_per_token']:,} bytes per "
                     f"token, {_gb(result['kv_cache_bytes'])} for batch {result['batch']} x "
                     f"{result['context']} tokens")
    memory = result["memory"]
    gpu = f", GPU {memory['gpu']} {_gb(memory['gpu_bytes'])} free" if memory.get("gpu") else \
        ", no GPU found"
    lines.append(f"  this machine: {_gb(memory.get('ram_bytes'))} RAM available{gpu}; a plan "
                 f"may fill {HEADROOM:.0%} of it")
    for dtype, row in result["verdicts"].items():
        lines.append(f"  {dtype:>8}: weights {_gb(result['weight_bytes'][dtype])}, with the "
                     f"cache {_gb(row['need_bytes'])}: RAM {row['ram']}, GPU {row['gpu']}")
    return "\n".join(lines)


__all__ = ["DTYPE_BYTES", "FAMILIES", "HEADROOM", "REAL_CONFIGS", "PlanError", "free_memory",
           "format_plan", "load_config", "parameter_count", "plan", "verdict"]
