"""The toy multimodal language model (notebook 08): the causal decoder against a NumPy
reference with an explicit mask, Flamingo's zero gate (exact) and its gated output against
fresh Keras layers, KV-cache decoding against the plain forward pass, the decoding limits,
top-k sampling against a brute-force top k, the caption parser on hand-written scenes, and
``.keras`` round trips with ``safe_mode=True``."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow  # noqa: F401

from mmcourse import clip, vlm
from mmcourse.data import scenes as data
from mmcourse.data import statements, text
from mmcourse.train import vlm as train_vlm

VOCAB = vlm.decoder_vocabulary(vocabulary=[text.PAD_TOKEN, text.OOV_TOKEN, *statements.WORDS])
V = len(VOCAB)
START, END = V - 2, V - 1
TINY = {"width": 16, "depth": 2, "num_heads": 2, "key_dim": 8, "hidden_units": 24}
TINY_VISION = {"stem_filters": (4, 4, 4), "width": 12, "image_depth": 1, "num_heads": 2,
               "key_dim": 4, "hidden_units": 8}


def _decoder(seed=0, max_length=16):
    keras.utils.set_random_seed(seed)
    return vlm.build_decoder(V, max_length=max_length, **TINY)


def _vision(seed=1):
    keras.utils.set_random_seed(seed)
    return vlm.vision_tokens(clip.build_image_encoder(**TINY_VISION))


def _set_gates(model, alpha=0.8, alpha_ff=-0.6):
    for layer in model.layers:
        if isinstance(layer, vlm.GatedCrossAttention):
            layer.alpha.assign(alpha)
            layer.alpha_ff.assign(alpha_ff)


@pytest.fixture(scope="module")
def models():
    decoder = _decoder()
    vision = _vision()
    llava = vlm.build_vlm(decoder, vision, "llava")
    flamingo = vlm.build_vlm(_decoder(seed=2), vision, "flamingo")
    _set_gates(flamingo)
    return {"decoder": decoder, "llava": llava, "flamingo": flamingo}


def _images(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(count, 64, 64, 3), dtype=np.uint8)


def _words(shape, seed=0):
    return np.random.default_rng(seed).integers(2, START, size=shape).astype(np.int32)


# --- a NumPy reference of the decoder -------------------------------------------------------

_erf = np.vectorize(math.erf)


def _layer_norm(x, layer):
    gamma, beta = (np.asarray(w) for w in layer.get_weights())
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + layer.epsilon) * gamma + beta


def _dense(x, layer, activation=None):
    kernel, bias = layer.get_weights()
    y = x @ kernel + bias
    return 0.5 * y * (1 + _erf(y / math.sqrt(2))) if activation == "gelu" else y


def _attention(query_in, source, attention, mask=None):
    """Multi-head attention from the weights, with a boolean mask (Tq, Tk)."""
    wq, bq, wk, bk, wv, bv, wo, bo = attention.get_weights()
    q = np.einsum("btd,dhk->bthk", query_in, wq) + bq
    k = np.einsum("btd,dhk->bthk", source, wk) + bk
    v = np.einsum("btd,dhk->bthk", source, wv) + bv
    scores = np.einsum("bqhk,bshk->bhqs", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("bhqs,bshk,hkd->bqd", weights, v, wo) + bo


def _reference_block(x, block):
    causal = np.tril(np.ones((x.shape[1], x.shape[1]), bool))
    normed = _layer_norm(x, block.attention_norm)
    x = x + _attention(normed, normed, block.attention, causal)
    hidden = _dense(_layer_norm(x, block.ff_norm), block.hidden, "gelu")
    return x + _dense(hidden, block.out)


def _reference_decoder(model, token_ids):
    embedding = model.get_layer("embedding")
    tokens, positions = (layer.get_weights()[0] for layer in (embedding.tokens,
                                                              embedding.positions))
    x = tokens[token_ids] + positions[:token_ids.shape[1]]
    for index in range(TINY["depth"]):
        x = _reference_block(x, model.get_layer(f"block{index + 1}"))
    return _dense(_layer_norm(x, model.get_layer("final_norm")), model.get_layer("logits"))


def test_decoder_equals_a_numpy_reference_with_an_explicit_causal_mask(models):
    token_ids = _words((3, 9))
    logits = np.asarray(models["decoder"](token_ids))
    assert logits.shape == (3, 9, V)
    np.testing.assert_allclose(logits, _reference_decoder(models["decoder"], token_ids),
                               atol=1e-4)


def test_a_future_token_changes_nothing_before_it_and_a_past_one_does(models):
    token_ids = _words((2, 10), seed=3)
    changed = token_ids.copy()
    changed[:, 6] = np.where(token_ids[:, 6] == 2, 3, 2)
    before, after = (np.asarray(models["decoder"](ids)) for ids in (token_ids, changed))
    np.testing.assert_allclose(before[:, :6], after[:, :6], atol=1e-6)
    assert np.abs(before[:, 6:] - after[:, 6:]).max(axis=-1).min() > 1e-4  # every later one


def test_llava_text_sees_the_image_and_no_future_token(models):
    images = _images(2).astype(np.float32) / 255
    token_ids = _words((2, 7), seed=4)
    changed = token_ids.copy()
    changed[:, 4] = np.where(token_ids[:, 4] == 2, 3, 2)
    base = np.asarray(models["llava"]([images, token_ids]))
    assert base.shape == (2, 7, V)
    np.testing.assert_allclose(np.asarray(models["llava"]([images, changed]))[:, :4],
                               base[:, :4], atol=1e-6)
    other_images = np.asarray(models["llava"]([images[::-1], token_ids]))
    assert np.abs(other_images - base).max(axis=-1).min() > 1e-4  # even at position 0


# --- Flamingo's gate ------------------------------------------------------------------------


def test_gated_cross_attention_starts_as_the_identity_exactly():
    keras.utils.set_random_seed(5)
    layer = vlm.GatedCrossAttention(2, 8)
    text_hidden = np.random.default_rng(0).normal(size=(3, 5, 16)).astype(np.float32) * 10
    image_tokens = np.random.default_rng(1).normal(size=(3, 7, 12)).astype(np.float32)
    out = np.asarray(layer(text_hidden, image_tokens))
    assert np.array_equal(out, text_hidden)  # bit for bit
    assert float(layer.alpha) == 0 and float(layer.alpha_ff) == 0
    assert {w.path.split("/")[-1] for w in layer.trainable_weights} >= {"alpha", "alpha_ff"}
    assert layer.alpha.shape == () and layer.alpha_ff.shape == ()


def test_gated_cross_attention_with_open_gates_against_fresh_keras_layers():
    keras.utils.set_random_seed(6)
    layer = vlm.GatedCrossAttention(num_heads=2, key_dim=8)
    rng = np.random.default_rng(2)
    text_hidden = rng.normal(size=(2, 4, 16)).astype(np.float32)
    image_tokens = rng.normal(size=(2, 6, 12)).astype(np.float32)
    layer(text_hidden, image_tokens)
    norm = keras.layers.LayerNormalization()
    norm.build((None, 4, 16))
    norm.set_weights(layer.query_norm.get_weights())
    attention = keras.layers.MultiHeadAttention(2, 8)
    attention.build((None, 4, 16), (None, 6, 12))
    attention.set_weights(layer.attention.get_weights())
    attended = np.asarray(attention(norm(text_hidden), image_tokens))

    layer.alpha.assign(0.5)  # the attention gate alone
    np.testing.assert_allclose(np.asarray(layer(text_hidden, image_tokens)),
                               text_hidden + math.tanh(0.5) * attended, atol=1e-5)
    layer.alpha_ff.assign(-1.5)  # and the feed-forward gate
    x = text_hidden + math.tanh(0.5) * attended
    feed_forward = _dense(_dense(_layer_norm(x, layer.ff_norm), layer.hidden, "gelu"),
                          layer.out)
    out = np.asarray(layer(text_hidden, image_tokens))
    np.testing.assert_allclose(out, x + math.tanh(-1.5) * feed_forward, atol=1e-5)
    assert np.abs(out - x).max() > 1e-3


def test_flamingo_with_closed_gates_is_the_text_decoder_exactly():
    decoder = _decoder(seed=7)
    flamingo = vlm.build_vlm(decoder, _vision(), "flamingo")
    token_ids = _words((2, 6), seed=5)
    images = _images(2).astype(np.float32) / 255
    assert np.array_equal(np.asarray(flamingo([images, token_ids])),
                          np.asarray(decoder(token_ids)))
    _set_gates(flamingo, alpha=0.3, alpha_ff=0.0)
    assert not np.allclose(np.asarray(flamingo([images, token_ids])),
                           np.asarray(decoder(token_ids)), atol=1e-4)


# --- KV cache -------------------------------------------------------------------------------


def _full_sequence(generated, prompt_ids):
    batch = len(generated)
    return np.concatenate([np.full((batch, 1), START), prompt_ids, generated[:, :-1]],
                          axis=1).astype(np.int32)


@pytest.mark.parametrize("name", ["decoder", "llava", "flamingo"])
@pytest.mark.parametrize("batch,prompt_length,length", [(1, 0, 1), (3, 2, 6), (5, 1, 11)])
def test_kv_cache_decoding_equals_recomputation(models, name, batch, prompt_length, length):
    model = models[name]
    images = None if name == "decoder" else _images(batch, seed=batch)
    prompt_ids = _words((batch, prompt_length), seed=length)
    kwargs = {"max_length": length, "stop_at_end": False, "return_logits": True}
    cached, cached_logits = vlm.decode_ids(model, images, prompt_ids, **kwargs)
    recomputed, recomputed_logits = vlm.decode_ids(model, images, prompt_ids,
                                                   use_cache=False, **kwargs)
    assert cached.shape == (batch, length)
    assert np.array_equal(cached, recomputed)
    # Both against the model's plain forward pass over the whole sequence.
    inputs = _full_sequence(cached, prompt_ids)
    forward = np.asarray(model(inputs) if images is None
                         else model([images.astype(np.float32) / 255, inputs]))
    forward = forward[:, prompt_length:]
    np.testing.assert_allclose(cached_logits, forward, atol=1e-5)
    np.testing.assert_allclose(recomputed_logits, forward, atol=1e-5)
    # ... and the greedy choice is the argmax of the allowed logits.
    allowed = forward.copy()
    allowed[..., [0, 1, START, END]] = -np.inf
    assert np.array_equal(cached, allowed.argmax(-1))


def test_cached_block_step_equals_the_block_on_the_whole_sequence(models):
    block = models["decoder"].get_layer("block1")
    x = np.random.default_rng(3).normal(size=(2, 6, 16)).astype(np.float32)
    keys, values = block.keys_values(x[:, :3])
    steps = []
    for t in range(3, 6):
        out, keys, values = block.step(x[:, t:t + 1], keys, values)
        steps.append(np.asarray(out))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), np.asarray(block(x))[:, 3:],
                               atol=1e-5)
    assert keys.shape == (2, 6, 2, 8)


# --- decoding limits ------------------------------------------------------------------------


def _with_bias(model, changes):
    head = model.get_layer("logits")
    kernel, bias = head.get_weights()
    new = bias.copy()
    for token, value in changes.items():
        new[token] = value
    head.set_weights([kernel, new])
    return kernel, bias


def test_max_length_end_token_and_banned_tokens():
    decoder = _decoder(seed=8)
    red = VOCAB.index("red")
    _with_bias(decoder, {red: 50.0, END: -50.0})
    assert vlm.generate(decoder, max_length=4, vocabulary=VOCAB) == ["red red red red"]
    ids = vlm.decode_ids(decoder, max_length=7)
    assert ids.shape == (1, 7) and (ids == red).all()
    # End first: nothing is written, the rest is padding.
    _with_bias(decoder, {END: 100.0})
    assert vlm.generate(decoder, max_length=5, vocabulary=VOCAB) == [""]
    assert vlm.decode_ids(decoder, max_length=5).tolist() == [[END, 0, 0, 0, 0]]
    # Padding, [UNK] and [START] far ahead of everything: never emitted, greedy or sampled.
    _with_bias(decoder, {0: 500.0, 1: 400.0, START: 300.0, END: -50.0})
    for method in ("greedy", "top_k"):
        ids = vlm.decode_ids(decoder, prompt_ids=_words((4, 2)), max_length=10,
                             method=method, k=3, seed=1)
        assert ids.shape == (4, 10)
        assert not np.isin(ids, [0, 1, START]).any()
    assert "[UNK]" not in vlm.generate(decoder, max_length=6, vocabulary=VOCAB)[0]


def test_a_row_stops_at_its_end_and_the_others_go_on():
    decoder = _decoder(seed=10)
    prompt = _words((6, 1), seed=7)
    # Raise [END]'s bias until some rows end early and others run to max_length.
    for bias in np.linspace(-2.0, 4.0, 25):
        _with_bias(decoder, {END: bias})
        stopped = vlm.decode_ids(decoder, prompt_ids=prompt, max_length=6)
        ended = (stopped == END).any(axis=1)
        if ended.any() and not ended.all() and (stopped[:, 0] != END).any():
            break
    else:
        pytest.fail("no bias of [END] gave a mix of rows that end and rows that do not")
    free, logits = vlm.decode_ids(decoder, prompt_ids=prompt, max_length=6,
                                  stop_at_end=False, return_logits=True)
    allowed = logits.copy()
    allowed[..., [0, 1, START]] = -np.inf
    for row, ids in enumerate(stopped):
        ends = np.flatnonzero(ids == END)
        if len(ends):  # [END] where it is the best token, then only padding
            e = ends[0]
            assert np.array_equal(ids[:e], free[row, :e])
            assert allowed[row, e].argmax() == END
            assert (ids[e + 1:] == 0).all()
        else:
            assert np.array_equal(ids, free[row])
            assert (allowed[row].argmax(-1) != END).all()
    texts = vlm.ids_to_texts(stopped, VOCAB)
    assert [len(t.split()) for t in texts] == [
        int(np.flatnonzero(ids == END)[0]) if (ids == END).any() else 6 for ids in stopped]


# --- top-k sampling -------------------------------------------------------------------------


def _fixed_logits(decoder, bias):
    head = decoder.get_layer("logits")
    kernel, _ = head.get_weights()
    head.set_weights([np.zeros_like(kernel), bias.astype(np.float32)])


def test_top_k_draws_only_the_k_best_tokens_and_repeats_with_its_seed():
    decoder = _decoder(seed=9)
    bias = np.random.default_rng(4).normal(size=V) * 2
    bias[END] = -20.0
    _fixed_logits(decoder, bias)  # the logits are the bias whatever the input
    allowed = [i for i in range(V) if i not in (0, 1, START, END)]
    top3 = set(sorted(allowed, key=lambda i: -bias[i])[:3])  # brute force
    prompt = _words((8, 1), seed=6)
    kwargs = {"max_length": 12, "method": "top_k", "k": 3}
    first = vlm.decode_ids(decoder, prompt_ids=prompt, seed=11, **kwargs)
    assert set(np.unique(first)) == top3
    assert np.array_equal(first, vlm.decode_ids(decoder, prompt_ids=prompt, seed=11, **kwargs))
    assert not np.array_equal(first, vlm.decode_ids(decoder, prompt_ids=prompt, seed=12,
                                                    **kwargs))
    assert set(np.unique(vlm.decode_ids(decoder, prompt_ids=prompt, seed=3, max_length=12,
                                        method="top_k", k=1))) == {max(top3, key=bias.__getitem__)}
    greedy = vlm.decode_ids(decoder, prompt_ids=prompt, max_length=3)
    assert (greedy == max(top3, key=bias.__getitem__)).all()
    # The shares follow the softmax of the three logits (96 draws, loose bounds).
    counts = np.array([(first == i).sum() for i in sorted(top3)])
    expected = np.exp(bias[sorted(top3)]) / np.exp(bias[sorted(top3)]).sum() * first.size
    assert np.abs(counts - expected).max() < 0.2 * first.size


def test_top_k_temperature_sharpens_or_flattens():
    decoder = _decoder(seed=11)
    bias = np.full(V, -30.0)
    best, second, third = (VOCAB.index(w) for w in ("red", "green", "blue"))
    bias[[best, second, third]] = [3.0, 2.0, 1.0]
    _fixed_logits(decoder, bias)
    prompt = _words((8, 1), seed=8)
    kwargs = {"max_length": 10, "method": "top_k", "k": 3, "seed": 4}
    # logits / 0.1 = 30, 20, 10: the best token every time (p > 0.9999 each draw).
    assert set(np.unique(vlm.decode_ids(decoder, prompt_ids=prompt, temperature=0.1,
                                        **kwargs))) == {best}
    # logits / 10 = 0.3, 0.2, 0.1: nearly uniform, so all three occur in 80 draws.
    flat = vlm.decode_ids(decoder, prompt_ids=prompt, temperature=10.0, **kwargs)
    assert set(np.unique(flat)) == {best, second, third}
    assert (flat == best).mean() < 0.5


def test_generate_with_images_and_prompt(models):
    images = _images(2, seed=10)
    texts = vlm.generate(models["flamingo"], images, prompt="a small", max_length=5,
                         vocabulary=VOCAB)
    assert len(texts) == 2 and all(len(t.split()) <= 5 for t in texts)
    ids = vlm.decode_ids(models["flamingo"], images,
                         np.array([[VOCAB.index("a"), VOCAB.index("small")]] * 2), 5)
    assert texts == vlm.ids_to_texts(ids, VOCAB)
    sampled = vlm.generate(models["llava"], images, max_length=5, method="top_k", k=4, seed=2,
                           vocabulary=VOCAB)
    assert sampled == vlm.generate(models["llava"], images, max_length=5, method="top_k", k=4,
                                   seed=2, vocabulary=VOCAB, use_cache=False)


# --- vocabulary, projector, vision ----------------------------------------------------------


def test_vocabulary_and_encoding(course_data):
    vocabulary = vlm.decoder_vocabulary(course_data)
    assert vocabulary[:2] == ["", "[UNK]"] and vocabulary[-2:] == ["[START]", "[END]"]
    assert vocabulary[:-2] == text.load_vocabulary(course_data)
    a, red = vocabulary.index("a"), vocabulary.index("red")
    ids = vlm.encode_texts(["A red!", "red"], vocabulary, 5)
    assert ids.tolist() == [[START, a, red, END, 0], [START, red, END, 0, 0]]
    assert vlm.ids_to_texts(ids[:, 1:], vocabulary) == ["a red", "red"]


def test_projector_is_an_mlp_on_every_token():
    keras.utils.set_random_seed(3)
    projector = vlm.build_projector(12, 16, hidden_units=20)
    tokens = np.random.default_rng(0).normal(size=(2, 5, 12)).astype(np.float32)
    out = np.asarray(projector(tokens))
    expected = _dense(_dense(tokens, projector.get_layer("hidden"), "gelu"),
                      projector.get_layer("out"))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_vision_tokens_of_the_trained_clip():
    from mmcourse import REPO_ROOT

    path = REPO_ROOT / "docs" / "results" / "clip_attributes.keras"
    assert path.is_file(), f"{path} is committed: restore it with git checkout"
    model = keras.saving.load_model(path, safe_mode=True)
    vision = vlm.vision_tokens(model)
    images = _images(2).astype(np.float32) / 255
    tokens = np.asarray(vision(images))
    assert tokens.shape == (2, 65, 64) and not vision.trainable
    encoder = model.get_layer("image_encoder")
    np.testing.assert_allclose(tokens, np.asarray(keras.Model(
        encoder.input, encoder.get_layer("vit_norm").output)(images)), atol=1e-6)
    assert vlm.build_projector()(tokens).shape == (2, 65, 64)


# --- saving ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["decoder", "llava", "flamingo"])
def test_save_and_load_with_safe_mode(models, name, tmp_path):
    model = models[name]
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    token_ids = _words((2, 5), seed=12)
    images = _images(2, seed=12)
    inputs = token_ids if name == "decoder" else [images.astype(np.float32) / 255, token_ids]
    np.testing.assert_array_equal(np.asarray(loaded(inputs)), np.asarray(model(inputs)))
    arguments = {"images": None if name == "decoder" else images, "max_length": 6,
                 "vocabulary": VOCAB}
    assert vlm.generate(loaded, **arguments) == vlm.generate(model, **arguments)
    if name == "flamingo":
        gates = [layer for layer in loaded.layers if isinstance(layer, vlm.GatedCrossAttention)]
        assert [float(g.alpha) for g in gates] == pytest.approx([0.8, 0.8])
        assert not loaded.get_layer("vision").trainable


# --- judging captions -----------------------------------------------------------------------

SCENE = [{"shape": "triangle", "colour": "yellow", "x": 16, "y": 14, "r": 6},
         {"shape": "square", "colour": "cyan", "x": 49, "y": 23, "r": 6},
         {"shape": "circle", "colour": "green", "x": 26, "y": 40, "r": 6}]
ONE = [{"shape": "circle", "colour": "red", "size": "small", "x": 30, "y": 30, "r": 7}]


@pytest.mark.parametrize("caption,objects,expected", [
    ("a small red circle", ONE, True),
    ("A small red circle.", ONE, True),
    ("a red small circle", ONE, True),          # reworded
    ("the small red circle", ONE, True),
    ("there is a circle red small", ONE, True),
    ("a large red circle", ONE, False),
    ("a small blue circle", ONE, False),
    ("a small red square", ONE, False),
    ("a small red", ONE, False),                # garbage: no shape
    ("a small small circle", ONE, False),
    ("circle circle circle", ONE, False),
    ("", ONE, False),
    ("left to right: yellow triangle, green circle, cyan square", SCENE, True),
    ("left to right yellow triangle green circle cyan square", SCENE, True),
    ("right to left: cyan square, green circle, yellow triangle", SCENE, True),   # reworded
    ("top to bottom: yellow triangle, cyan square, green circle", SCENE, True),
    ("bottom to top: green circle, cyan square, yellow triangle", SCENE, True),
    ("left to right: yellow triangle, cyan square, green circle", SCENE, False),  # order
    ("left to right: yellow triangle, green circle", SCENE, False),               # one missing
    ("left to right: yellow triangle, green square, cyan square", SCENE, False),  # shape
    ("left to right: yellow triangle, green circle, cyan square, red circle", SCENE, False),
    ("left to right: yellow triangle green", SCENE, False),
    ("a yellow triangle left of a green circle", SCENE, True),   # the match grammar
    ("a green circle left of a yellow triangle", SCENE, False),
    ("there are three objects", SCENE, True),
    ("there are two objects", SCENE, False),
    ("a small red circle", SCENE, False),
])
def test_caption_is_true(caption, objects, expected):
    assert vlm.caption_is_true(caption, objects) is expected


def test_caption_statements_and_correct_statements(course_data):
    assert vlm.caption_statements("left to right: yellow triangle, green circle") == [
        {"kind": "count", "number": 2},
        {"kind": "spatial", "a": {"colour": "yellow", "shape": "triangle"},
         "relation": "left of", "b": {"colour": "green", "shape": "circle"}}]
    assert vlm.caption_statements("a red large square") == [
        {"kind": "attribute", "size": "large", "colour": "red", "shape": "square"}]
    for garbage in ("hello world", "left to right: yellow triangle green",
                    "left to right", "a small red circle square"):
        with pytest.raises(ValueError, match=f"caption '{garbage}' is not a statement"):
            vlm.caption_statements(garbage)
    # The reference captions of the data are all correct, shuffled ones mostly not.
    for level in data.LEVELS:
        scenes = data.load_records("scenes", level, "test", root=course_data)[:200]
        captions = [statements.retrieval_caption(s["objects"], level) for s in scenes]
        assert vlm.correct_statements(captions, scenes) == 1.0
        assert vlm.correct_statements(captions[1:] + captions[:1], scenes) < 0.3
    assert vlm.correct_statements(["a small red circle", "a large red circle", "garbage"],
                                  [ONE, ONE, ONE]) == pytest.approx(1 / 3)


# --- bad input ------------------------------------------------------------------------------


def test_bad_input_raises_clear_errors(models):
    decoder, llava = models["decoder"], models["llava"]
    with pytest.raises(ValueError, match="method must be one of"):
        vlm.generate(decoder, method="beam", vocabulary=VOCAB)
    with pytest.raises(ValueError, match="max_length must be a positive int"):
        vlm.generate(decoder, max_length=0, vocabulary=VOCAB)
    with pytest.raises(ValueError, match="max_length \\+ prompt length must be at most 16"):
        vlm.generate(decoder, prompt="a red", max_length=15, vocabulary=VOCAB)
    with pytest.raises(ValueError, match="k must be at most 48"):
        vlm.generate(decoder, method="top_k", k=49, vocabulary=VOCAB)
    with pytest.raises(ValueError, match="k must be a positive int"):
        vlm.generate(decoder, method="top_k", k=0, vocabulary=VOCAB)
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        vlm.generate(decoder, method="top_k", temperature=0, vocabulary=VOCAB)
    with pytest.raises(ValueError, match="prompt holds words outside the vocabulary"):
        vlm.generate(decoder, prompt="a purple", vocabulary=VOCAB)
    with pytest.raises(ValueError, match="vocabulary has 49 tokens"):
        vlm.generate(decoder, vocabulary=VOCAB[:-2])
    with pytest.raises(ValueError, match="images must be uint8"):
        vlm.generate(llava, np.zeros((2, 32, 32, 3), np.uint8), vocabulary=VOCAB)
    with pytest.raises(ValueError, match="images must be uint8"):
        vlm.generate(llava, np.zeros((2, 64, 64, 3), np.float32), vocabulary=VOCAB)
    with pytest.raises(ValueError, match="images must be given"):
        vlm.decode_ids(llava)
    with pytest.raises(ValueError, match="images must be None"):
        vlm.decode_ids(decoder, _images(1))
    with pytest.raises(ValueError, match="prompt must be a str or 2 strs"):
        vlm.generate(llava, _images(2), prompt=["a"], vocabulary=VOCAB)
    with pytest.raises(ValueError, match="prompt_ids must be word ids"):
        vlm.decode_ids(decoder, prompt_ids=np.array([[START]]))
    with pytest.raises(ValueError, match="num_heads must be a positive int"):
        vlm.GatedCrossAttention(0, 8)
    with pytest.raises(ValueError, match="key_dim must be a positive int"):
        vlm.GatedCrossAttention(2, -1)
    with pytest.raises(ValueError, match="width must be a positive int"):
        vlm.build_projector(64, 0)
    with pytest.raises(ValueError, match="unknown option"):
        vlm.build_decoder(V, heads=2)
    with pytest.raises(ValueError, match="arch must be one of"):
        vlm.build_vlm(decoder, _vision(), "blip")
    with pytest.raises(ValueError, match="decoder must be a text decoder"):
        vlm.build_vlm(llava, _vision(), "llava")
    with pytest.raises(ValueError, match="model must be built by build_decoder"):
        vlm.generate(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="model must be a CLIP model or image encoder"):
        vlm.vision_tokens(decoder)
    with pytest.raises(ValueError, match="texts\\[0\\] has 3 words"):
        vlm.encode_texts(["a red circle"], VOCAB, 4)
    with pytest.raises(ValueError, match="captions and scenes must be non-empty"):
        vlm.correct_statements(["a small red circle"], [])
    with pytest.raises(TypeError, match="captions must be a list"):
        vlm.correct_statements("a small red circle", [ONE])
    with pytest.raises(ValueError, match="vocabulary already holds"):
        vlm.decoder_vocabulary(vocabulary=VOCAB)


def test_the_command_line_offers_the_captioner_architectures():
    from mmcourse.__main__ import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    arch = next(action for action in train._actions if action.dest == "arch")
    assert set(vlm.ARCHS) == {"llava", "flamingo"} and set(vlm.ARCHS) <= set(arch.choices)


STEPS = dict.fromkeys(train_vlm.CAPTION_EPOCHS, 1)  # one epoch of every step


@pytest.fixture(scope="module")
def shared_backbone():
    """One CLIP and pre-trained decoder (``caption_backbone``, 1 epoch each on 64 captions),
    with a copy of the decoder's weights before any captioner is trained on it."""
    backbone = train_vlm.caption_backbone("attributes", seed=3, epochs=STEPS, train_size=64,
                                          batch_size=32)
    return backbone, [w.copy() for w in backbone["decoder"].get_weights()]


@pytest.fixture(scope="module")
def llava_run(shared_backbone):
    """LLaVA trained on the shared backbone: the quick run below and the backbone's test
    share it."""
    return train_vlm.train_captioner("attributes", "llava", seed=3, epochs=STEPS,
                                     train_size=64, batch_size=32,
                                     backbone=shared_backbone[0], keep_model=True)


@pytest.fixture(scope="module")
def flamingo_run():
    """Flamingo trained without a backbone (``train_captioner`` pre-trains its own decoder)
    on a tiny untrained image encoder given as ``clip_model``."""
    keras.utils.set_random_seed(1)
    encoder = clip.build_image_encoder(**TINY_VISION)
    return train_vlm.train_captioner("attributes", "flamingo", seed=3, epochs=STEPS,
                                     train_size=64, batch_size=32, clip_model=encoder,
                                     keep_model=True)


@pytest.mark.parametrize("arch", vlm.ARCHS)
def test_train_captioner_quick_run_reports_every_stage(arch, request):
    result = dict(request.getfixturevalue(f"{arch}_run"))
    model = result.pop("model")
    assert result["task"] == "caption" and result["arch"] == arch
    assert set(result["stages"]) == {"stage1", "stage2"}
    # the scores after stage 2, recomputed from the trained model on the 500 test images
    images, captions, _ = data.load_arrays("retrieval", "attributes", "test")
    scenes = data.load_records("scenes", "attributes", "test")
    vocabulary = vlm.decoder_vocabulary()
    generated = vlm.generate(model, images, max_length=8, vocabulary=vocabulary)
    assert result["exact_match"] == pytest.approx(np.mean(
        [text.split_words(g) == text.split_words(c) for g, c in zip(generated, captions, strict=True)]))
    assert result["correct_statements"] == pytest.approx(np.mean(
        [vlm.caption_is_true(g, s["objects"]) for g, s in zip(generated, scenes, strict=True)]))
    ids = np.zeros((len(captions), 8), np.int64)  # [START] words [END], padding
    for row, caption in enumerate(captions):
        words = [vocabulary.index(w) for w in text.split_words(caption)]
        ids[row, :len(words) + 2] = [START, *words, END]
    logits = model.predict([images / 255.0, ids[:, :-1]], verbose=0)
    real = ids[:, 1:] > 0
    assert result["token_accuracy"] == pytest.approx(
        (logits.argmax(-1) == ids[:, 1:])[real].mean(), abs=1e-6)
    assert [s["generated"] for s in result["samples"]] == generated[:5]
    assert result["test_examples"] == 500 and result["train_examples"] == 64
    assert len(result["samples"]) == 5
    stage1, stage2 = result["stages"]["stage1"], result["stages"]["stage2"]
    # Stage 1 trains only the new layers; LLaVA's stage 2 adds the decoder, Flamingo's not.
    assert stage1["trainable_params"] < result["params"]
    if arch == "llava":
        assert stage2["trainable_params"] > stage1["trainable_params"]
    else:
        assert stage2["trainable_params"] == stage1["trainable_params"]
    assert result["train_seconds"] == pytest.approx(sum(result["seconds"].values()))
    # LLaVA's backbone trained a CLIP; Flamingo's clip_model was given, its decoder
    # pre-trained by train_captioner itself
    assert set(result["seconds"]) == {"clip", "pretrain", "stage1", "stage2"} - (
        {"clip"} if arch == "flamingo" else set())


def test_train_captioner_bad_arguments():
    with pytest.raises(ValueError, match="arch must be one of"):
        train_vlm.train_captioner("attributes", "gpt")
    with pytest.raises(ValueError, match="level must be one of"):
        train_vlm.train_captioner("colours")
    with pytest.raises(ValueError, match="unknown step 'stage3'"):
        train_vlm.train_captioner(epochs={"stage3": 1})


def test_gate_trace_records_every_gate_before_and_after_each_batch():
    decoder, vision = _decoder(), _vision()
    model = vlm.build_vlm(decoder, vision, "flamingo")
    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    trace = train_vlm.GateTrace()
    images, ids = _images(8) / 255.0, _words((8, 5))
    model.fit([images, ids[:, :-1]], ids[:, 1:], batch_size=4, epochs=1, verbose=0,
              callbacks=[trace])
    _set_gates(model, alpha=0.3, alpha_ff=-2.0)  # a second fit starts from these
    model.fit([images, ids[:, :-1]], ids[:, 1:], batch_size=8, epochs=1, verbose=0,
              callbacks=[trace])
    assert sorted(trace.gates) == ["gated_cross1", "gated_cross2"]
    for name, values in trace.gates.items():
        assert len(values) == 1 + 2 + 1          # before training, 2 batches, then 1 batch
        assert values[0] == (0.0, 0.0)           # the gates start closed
        assert values[1] != (0.0, 0.0)           # and SGD opens them
        layer = model.get_layer(name)
        assert values[-1] == pytest.approx((math.tanh(float(layer.alpha)),
                                            math.tanh(float(layer.alpha_ff))), abs=1e-6)
    assert trace.stage_starts == [0, 2]
    with pytest.raises(ValueError, match="GateTrace needs a model with GatedCrossAttention"):
        decoder.compile(optimizer="sgd", loss="mse")
        decoder.fit(ids[:, :-1], np.zeros((8, 4, V)), verbose=0,
                    callbacks=[train_vlm.GateTrace()])


def test_a_shared_backbone_is_copied_not_changed(shared_backbone, llava_run):
    backbone, before = shared_backbone
    # LLaVA's stage 2 fine-tunes its decoder: a copy, so the backbone's stays as it was.
    assert all(np.array_equal(a, b) for a, b in zip(before, backbone["decoder"].get_weights(),
                                                    strict=True))
    tuned = llava_run["model"].get_layer("block1").get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(
        tuned, backbone["decoder"].get_layer("block1").get_weights(), strict=True))
    assert set(llava_run["seconds"]) == {"clip", "pretrain", "stage1", "stage2"}
    assert llava_run["seconds"]["clip"] == backbone["seconds"]["clip"]
    with pytest.raises(ValueError, match="backbone was trained for level 'attributes', seed 3"):
        train_vlm.train_captioner("attributes", "llava", seed=4, epochs=STEPS, train_size=64,
                                  backbone=backbone)


# --- caption_metrics on captions and logits known by hand (issue 28, section 7) --------------


class _KnownLogits:
    """A captioner whose next-token logits are given: ``predict`` records its inputs."""

    def __init__(self, predicted):
        self.predicted, self.inputs = np.asarray(predicted), None

    def predict(self, inputs, batch_size=None, verbose=None):
        self.inputs = inputs
        return np.eye(11)[self.predicted] * 5.0  # one-hot logits of the predicted ids


def test_caption_metrics_by_hand(monkeypatch):
    vocabulary = ["", "[UNK]", "a", "small", "large", "red", "blue", "circle", "square",
                  "[START]", "[END]"]
    start, end = 9, 10
    captions = ["A small red circle.", "a large blue square", "a small blue circle"]
    scenes = [{"objects": [{"size": "small", "colour": "red", "shape": "circle"}]},
              {"objects": [{"size": "large", "colour": "blue", "shape": "square"}]},
              {"objects": [{"size": "small", "colour": "blue", "shape": "circle"}]}]
    # exact: the first only (case and the full stop do not count); true of the scene: the
    # first and the second (no article is still the grammar); the third is false
    generated = ["a small red circle", "large blue square", "a large red circle"]
    calls = []
    monkeypatch.setattr(train_vlm, "generate", lambda model, images, max_length, vocabulary: (
        calls.append(max_length) or generated))
    # targets (ids[:, 1:]) of each row: a, size, colour, shape, [END], padding
    # 10 of 15 right; the padding's 0s are "right" too, and must not count (13 of 18)
    predicted = [[2, 3, 5, 8, end, 0],      # 4 of 5
                 [2, 4, 2, 2, 2, 0],        # 2 of 5
                 [start, 3, 6, 7, end, 0]]  # 4 of 5
    model = _KnownLogits(predicted)
    images = np.full((3, 2, 2, 3), 51, np.uint8)
    metrics = train_vlm.caption_metrics(model, images, captions, scenes, vocabulary, length=7)
    assert calls == [7]
    assert metrics["generated"] == generated
    assert metrics["exact_match"] == pytest.approx(1 / 3)
    assert metrics["correct_statements"] == pytest.approx(2 / 3)
    assert metrics["token_accuracy"] == pytest.approx(10 / 15)
    pixels, ids = model.inputs
    np.testing.assert_allclose(pixels, 0.2)  # 51 / 255
    assert np.asarray(ids).tolist() == [[start, 2, 3, 5, 7, end], [start, 2, 4, 6, 8, end],
                                        [start, 2, 3, 6, 7, end]]


def test_decode_ids_and_generate_write_16_tokens_unless_told():
    """Without ``max_length``: at most 16 tokens, as the signatures say (mutation audit,
    issue 28, section 7); a decoder that always writes "red" shows the length."""
    decoder = _decoder(seed=8)
    red = VOCAB.index("red")
    _with_bias(decoder, {red: 50.0, END: -50.0})
    assert vlm.decode_ids(decoder).tolist() == [[red] * 16]
    assert vlm.generate(decoder, vocabulary=VOCAB) == [" ".join(["red"] * 16)]


def test_train_captioner_and_its_backbone_check_and_pass_their_arguments(monkeypatch):
    """``caption_backbone`` and ``train_captioner`` with ``_backbone`` and ``_train_stages``
    replaced (nothing trains): bad levels and epochs are refused by name, the default
    epochs are those of the published table (docs/results/caption_table.jsonl), and the
    result's summary holds the model's parameters and the stages' times."""
    from mmcourse import REPO_ROOT

    with pytest.raises(ValueError, match="level must be one of .*got 'colours'"):
        train_vlm.caption_backbone("colours")
    with pytest.raises(ValueError, match="epochs: unknown step 'stage3'"):
        train_vlm.caption_backbone("attributes", epochs={"stage3": 1})
    recorded = {}

    class Model:
        def count_params(self):
            return 321

    def fake_backbone(task, level, seed, root, **options):
        recorded["backbone"] = options["epochs"]
        return {"epochs": {k: options["epochs"][k] for k in ("clip", "pretrain")}}

    def fake_stages(task, backbone, arch, seed, **options):
        stage = {**options["evaluate"](Model()), "trainable_params": 54}
        return Model(), {"pretrain": 0.5, "stage2": 2.0}, {"stage1": stage, "stage2": stage}

    def fake_metrics(model, images, captions, scenes, vocabulary, length):
        return {"exact_match": 0.25, "correct_statements": 0.5, "token_accuracy": 0.75,
                "generated": ["a small red circle"] * len(captions)}

    monkeypatch.setattr(train_vlm, "_backbone", fake_backbone)
    monkeypatch.setattr(train_vlm, "_train_stages", fake_stages)
    monkeypatch.setattr(train_vlm, "caption_metrics", fake_metrics)
    backbone = train_vlm.caption_backbone("attributes", epochs={"clip": 2}, train_size=16)
    published = json.loads((REPO_ROOT / "docs" / "results" / "caption_table.jsonl").read_text(
        encoding="utf-8").splitlines()[0])["epochs"]
    assert recorded["backbone"] == {**published, "clip": 2}
    assert backbone["epochs"] == {"clip": 2, "pretrain": published["pretrain"]}
    result = train_vlm.train_captioner("attributes", "llava", train_size=16)
    assert result["epochs"] == published
    assert (result["params"], result["trainable_params"], result["train_seconds"]) == \
        (321, 54, 2.5)
    assert (result["exact_match"], result["correct_statements"], result["token_accuracy"]) == \
        (0.25, 0.5, 0.75)


def test_the_default_decoder_has_its_parameter_count_by_hand():
    """``build_decoder`` unless told: width 64, 2 blocks of 4 heads of 16 dimensions, a
    128-unit feed-forward, 24 positions (mutation audit, issue 28, section 7). By hand, for
    V tokens: embedding V x 64 + 24 x 64; each block: query, key and value 64 x 64 + 64 each
    and the output 64 x 64 + 64 (4 x 4,160), the feed-forward 64 x 128 + 128 and
    128 x 64 + 64 (16,576), two layer norms (256): 33,472; the final norm 128; the logits
    64 V + V. In all 129 V + 1,536 + 2 x 33,472 + 128 = 129 V + 68,608."""
    decoder = vlm.build_decoder(V)
    assert decoder.count_params() == 129 * V + 68_608
    assert decoder.get_layer("embedding").max_length == 24


def test_prompt_ids_of_the_wrong_rank_batch_or_type_are_refused():
    decoder, vision = _decoder(seed=9), _vision()
    llava = vlm.build_vlm(decoder, vision, "llava")
    bad = [(decoder, None, np.array([2, 3])),                 # one row, not (batch, L0)
           (llava, _images(2), np.full((3, 2), 2)),           # 3 prompts for 2 images
           (decoder, None, np.full((1, 2), 2.0))]             # not integers
    for model, images, prompt_ids in bad:
        with pytest.raises(ValueError, match="prompt_ids must be word ids"):
            vlm.decode_ids(model, images, prompt_ids=prompt_ids)
    assert vlm.decode_ids(decoder, prompt_ids=np.full((1, 2), 2), max_length=3).shape == (1, 3)
