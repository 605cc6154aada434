"""Every exercise in the course: placeholder, right and wrong answers, the solutions shown to
learners, and each checker against answers computed independently of it.

An exercise's ``reference`` comes from the same module as its checker, often from the same
function, so "the reference is accepted" proves little. Here each checker must also accept
answers built independently (``INDEPENDENT``): by Keras or TensorFlow, from a literal worked
out by hand, or from the documentation, never from the checker's module or ``mmcourse.scratch``.
Each ``solution_code`` runs inside its notebook under nbval, which must record "Correct"
(the ``solutions correct`` item of the root ``conftest.py``).
"""

import ast
import inspect
import json
import re
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmcourse import NOTEBOOKS_DIR, course_exercises
from mmcourse.exercises import ____
from mmcourse.train.tasks import train

SETS = {
    name: factory
    for name, factory in inspect.getmembers(course_exercises, inspect.isfunction)
    if name.startswith("notebook_")
}
EXERCISES = [
    pytest.param(name, index, id=f"{name}-q{index + 1}")
    for name, factory in SETS.items()
    for index in range(len(factory()))
]


def _exercise(name, index):
    return list(SETS[name]())[index]


def test_every_notebook_has_at_least_three_exercises():
    assert SETS, "no notebook_NN() exercise sets found"
    for name, factory in SETS.items():
        assert len(factory()) >= 3, name


@pytest.mark.parametrize(("name", "index"), EXERCISES)
def test_placeholder_is_not_attempted(name, index):
    assert _exercise(name, index).check(____).status == "not attempted"


@pytest.mark.parametrize(("name", "index"), EXERCISES)
def test_reference_answer_is_correct(name, index):
    exercise = _exercise(name, index)
    if exercise.prediction is not None:  # the solution's prediction, then its measurement
        exercise.predict(_solution_prediction(exercise))
    feedback = exercise.check(exercise.reference())
    assert feedback.correct, str(feedback)
    if exercise.prediction is not None:
        predicted = exercise.prediction.show(exercise.predicted)
        assert re.search(f"You predicted {re.escape(predicted)}; the measurement is .+\\.$",
                         feedback.message), feedback.message


def _solution_prediction(exercise):
    """The value the solution passes to ``ex.qN.predict(...)``, a literal."""
    found = re.findall(rf"^ex\.{exercise.name}\.predict\((.+)\)$", exercise.solution_code, re.M)
    assert len(found) == 1, f"the solution of {exercise.name} predicts {len(found)} times"
    return ast.literal_eval(found[0])


@pytest.mark.parametrize(("name", "index"), EXERCISES)
def test_an_experiment_that_says_predict_first_records_the_prediction(name, index):
    """Issue 24, section 5: "Predict first" in a prompt or its notebook means a Prediction,
    a solution that predicts before it measures, and a starter cell with ex.qN.predict(____)."""
    from mmcourse.classroom import teaching

    exercise = _exercise(name, index)
    number = name.removeprefix("notebook_")
    notebook = json.loads(next(NOTEBOOKS_DIR.glob(f"{number}_*.ipynb")).read_text("utf-8"))
    cells = notebook["cells"]
    starter = teaching.source(cells[teaching.starter_cells(
        notebook, [e.name for e in SETS[name]()])[exercise.name]])
    task = teaching.source(next(cell for cell in reversed(cells[:cells.index(next(
        cell for cell in cells if teaching.source(cell) == starter))])
        if cell["cell_type"] == "markdown"))
    says_predict = "predict first" in (exercise.prompt + task).lower()
    assert says_predict == (exercise.prediction is not None), \
        f"{exercise.name}: says 'Predict first' {says_predict}, has a Prediction " \
        f"{exercise.prediction is not None}"
    if exercise.prediction is None:
        assert f"ex.{exercise.name}.predict(" not in starter
        return
    exercise.prediction.validate(_solution_prediction(exercise))
    solution = exercise.solution_code
    assert solution.index(f"ex.{exercise.name}.predict(") < \
        solution.index(f"ex.{exercise.name}.check(")
    assert f"ex.{exercise.name}.predict(____)" in starter
    assert starter.index(f"ex.{exercise.name}.predict(____)") < \
        starter.index(f"ex.{exercise.name}.check(")


@pytest.mark.parametrize(("name", "index"), EXERCISES)
def test_wrong_answers_are_incorrect_with_a_reason(name, index):
    exercise = _exercise(name, index)
    wrong_answers = exercise.wrong()
    assert wrong_answers, "each exercise needs at least one wrong answer"
    for answer in wrong_answers:
        feedback = exercise.check(answer)
        assert feedback.status == "incorrect", f"{answer!r} was accepted"
        assert len(feedback.message) > 10


#: references of a learner's function that are other code on purpose: the library's own
REFERENCE_IS_OTHER_CODE = {("notebook_01", 0): "mmcourse.data.augment.swap_spatial_words"}


@pytest.mark.parametrize(("name", "index"), EXERCISES)
def test_a_solution_that_defines_the_reference_function_is_its_source(name, index):
    """Issue 26: a solution is written once. When the solution defines a function of the
    reference's name, it shows the reference's own source (``solution_from``), so the code a
    learner is shown is the code this suite checks, and the two cannot drift apart."""
    exercise = _exercise(name, index)
    if (name, index) in REFERENCE_IS_OTHER_CODE:
        return
    # what ``reference`` returns, found without calling it (some references train a model)
    lookup = exercise.reference
    named = [cell.cell_contents for cell in lookup.__closure__ or ()] + [
        lookup.__globals__.get(word) for word in lookup.__code__.co_names]
    defined = set(re.findall(r"^def (\w+)\(", exercise.solution_code, re.M))
    for function in named:
        if inspect.isfunction(function) and function.__name__ in defined:
            source = textwrap.dedent(inspect.getsource(function)).strip()
            assert source in exercise.solution_code, function.__name__


@pytest.mark.parametrize(("name", "index"), EXERCISES)
def test_hints_and_solution_render(name, index):
    exercise = _exercise(name, index)
    assert exercise.hints
    assert "Hint" in exercise.hint(1)._repr_markdown_()
    assert exercise.solution().code.strip()


# --- each checker against independent answers -----------------------------------------------


def _keras_dense(x, kernel, bias):
    layer = keras.layers.Dense(kernel.shape[1], activation="sigmoid", dtype="float64")
    layer.build((None, kernel.shape[0]))
    layer.set_weights([kernel, bias])
    return np.asarray(layer(x))


def _tf_same_padding(size, kernel_size, stride):
    """(pad_before, pad_after) of TensorFlow's padding='SAME', found by trying every explicit
    padding with 'VALID' and keeping the one that gives the same output (smallest first)."""
    rng = np.random.default_rng(size * 100 + kernel_size * 10 + stride)
    x = rng.normal(size=(1, size, 1)).astype("float32")
    kernel = rng.normal(size=(kernel_size, 1, 1)).astype("float32")
    same = tf.nn.conv1d(x, kernel, stride, "SAME").numpy()
    for before in range(kernel_size):
        for after in range(kernel_size):
            padded = np.pad(x, ((0, 0), (before, after), (0, 0)))
            if padded.shape[1] < kernel_size:
                continue
            valid = tf.nn.conv1d(padded, kernel, stride, "VALID").numpy()
            if valid.shape == same.shape and np.allclose(valid, same, atol=1e-5):
                return before, after
    raise AssertionError(f"no explicit padding reproduces SAME for {size, kernel_size, stride}")


def _keras_receptive_field():
    """Receptive field of conv 3 (stride 1), pool 2 (stride 2), conv 3, measured by Keras: the
    input positions with a non-zero gradient of one output. Average pooling has max pooling's
    geometry and a gradient at every position of its window."""
    model = keras.Sequential([
        keras.Input((32, 1)),
        keras.layers.Conv1D(1, 3, kernel_initializer="ones", use_bias=False),
        keras.layers.AveragePooling1D(2),
        keras.layers.Conv1D(1, 3, kernel_initializer="ones", use_bias=False),
    ])
    x = tf.Variable(np.ones((1, 32, 1), "float32"))
    with tf.GradientTape() as tape:
        output = model(x)[0, 6, 0]
    support = np.flatnonzero(tape.gradient(output, x).numpy()[0, :, 0])
    assert support.tolist() == list(range(support[0], support[-1] + 1))  # contiguous
    return len(support)


def _keras_rnn_step(x_t, h_prev, kernel, recurrent_kernel, bias):
    layer = keras.layers.SimpleRNN(kernel.shape[1], dtype="float64")
    layer.build((None, 1, kernel.shape[0]))
    layer.set_weights([kernel, recurrent_kernel, bias])
    return np.asarray(layer(x_t[:, None], initial_state=[h_prev]))


def _keras_forget_kernel(kernel):
    """The forget gate's input weights, read back from a Keras LSTM: with no recurrent weights,
    no bias and h0 = 0, one step gives c1 = f * c0 + i * g, so c1(c0=1) - c1(c0=0) = f =
    sigmoid(x W_f); with x = the identity, W_f = logit(f). No gate order assumed."""
    features, units = kernel.shape[0], kernel.shape[1] // 4
    layer = keras.layers.LSTM(units, return_state=True, dtype="float64")
    layer.build((None, 1, features))
    layer.set_weights([kernel, np.zeros((units, 4 * units)), np.zeros(4 * units)])
    x = np.eye(features)[:, None, :]
    zeros, ones = np.zeros((features, units)), np.ones((features, units))
    cells = [np.asarray(layer(x, initial_state=[zeros, c0])[2]) for c0 in (zeros, ones)]
    forget = cells[1] - cells[0]
    return np.log(forget / (1 - forget))


def _keras_padding_mask(token_ids):
    embedding = keras.layers.Embedding(100, 2, mask_zero=True)
    return np.asarray(embedding.compute_mask(np.asarray(token_ids)))


def _keras_multiply_fusion(x, y, w_x, b_x, w_y, b_y):
    image = keras.layers.Dense(w_x.shape[1], dtype="float64")
    text = keras.layers.Dense(w_y.shape[1], dtype="float64")
    image.build((None, w_x.shape[0]))
    text.build((None, w_y.shape[0]))
    image.set_weights([w_x, b_x])
    text.set_weights([w_y, b_y])
    return np.asarray(keras.layers.Multiply(dtype="float64")([image(x), text(y)]))


def _keras_scaled_attention(q, k, v):
    """softmax(q k^T / sqrt(d)) v by Keras' dot-product Attention layer on q / sqrt(d)."""
    return np.asarray(keras.layers.Attention(dtype="float64")([q / np.sqrt(q.shape[-1]), v, k]))


def _kron_features(x, y):
    """[1; x] kron [1; y] per example (np.kron is the Kronecker product's definition)."""
    return np.stack([np.kron(np.r_[1.0, xi], np.r_[1.0, yi]) for xi, yi in zip(x, y, strict=True)])


def _params(layer, input_shape):
    layer.build(input_shape)
    return layer.count_params()


def _other_article_model():
    """A different model that meets notebook 04 q5's specification."""
    image = keras.Input((64, 64, 3))
    token_ids = keras.Input((12,), dtype="int32")
    x = keras.layers.Conv2D(8, 5, strides=4, activation="relu")(image)
    x = keras.layers.GlobalMaxPooling2D()(x)
    y = keras.layers.LSTM(8)(keras.layers.Embedding(49, 8, mask_zero=True)(token_ids))
    z = keras.layers.Concatenate()([x, y])
    return keras.Model([image, token_ids], keras.layers.Dense(1, activation="sigmoid")(z))


def _first_batch_positives_from_the_jsonl():
    from mmcourse.data.store import ensure_data

    path = ensure_data() / "relations" / "val" / "match.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()[:32]
    return int(sum(json.loads(line)["label"] for line in lines))


#: Answers worked out by hand (with a literal) or by Keras/TensorFlow, for each exercise.
INDEPENDENT = {
    ("notebook_00", "q1"): lambda: [(2, 4), tuple(tf.matmul(tf.ones((2, 3)),
                                                            tf.ones((3, 4))).shape)],
    ("notebook_00", "q2"): lambda: ["/CPU:0", "/device:CPU:0", "cpu:0",
                                    tf.config.list_logical_devices("CPU")[0].name],
    ("notebook_00", "q3"): lambda: [
        lambda seed: np.random.Generator(np.random.PCG64(seed)).standard_normal(3)],
    ("notebook_00", "q4"): lambda: [_keras_train_once],
    ("notebook_01", "q1"): lambda: [{
        "a red circle above a blue square": "a red circle below a blue square",
        "a green square below a cyan circle": "a green square above a cyan circle",
        "is the red object at the top or bottom": "is the red object at the bottom or top",
        "a red circle left of a blue square": "a red circle left of a blue square",
        "there are two objects": "there are two objects",
    }.get],
    ("notebook_01", "q2"): lambda: [  # a float32 tensor, as Keras returns it
        lambda image: keras.layers.Rescaling(1 / 255)(image.astype("float32")),
        lambda image: tf.cast(image, tf.float32) / 255],
    ("notebook_01", "q3"): lambda: [
        lambda ids, n: keras.utils.pad_sequences([ids], maxlen=n, padding="post",
                                                 truncating="post", dtype="int32")[0]],
    ("notebook_01", "q4"): lambda: [_first_batch_positives_from_the_jsonl()],
    ("notebook_01", "q5"): lambda: [_smallest_vocabulary_by_keras()],
    ("notebook_02", "q1"): lambda: [_keras_dense],
    ("notebook_02", "q2"): lambda: [_tf_same_padding],
    ("notebook_02", "q3"): lambda: [(15, 15, 32), tuple(keras.Sequential([
        keras.Input((64, 64, 3)), keras.layers.Conv2D(16, 5, strides=2, padding="valid"),
        keras.layers.Conv2D(32, 3, strides=2, padding="same")]).output_shape[1:])],
    ("notebook_02", "q4"): lambda: [4640, _params(keras.layers.Conv2D(32, (3, 3)),
                                                  (None, 8, 8, 16))],
    ("notebook_02", "q5"): lambda: [_pooling_first_design()],
    ("notebook_03", "q1"): lambda: [_keras_rnn_step],
    ("notebook_03", "q2"): lambda: [1600, _params(keras.layers.LSTM(16), (None, None, 8))],
    ("notebook_03", "q3"): lambda: [_keras_forget_kernel],
    ("notebook_03", "q4"): lambda: [_keras_padding_mask],
    ("notebook_03", "q5"): lambda: [_lstm_with_forget_bias_initializer()],
    ("notebook_04", "q1"): lambda: [_keras_multiply_fusion],
    ("notebook_04", "q2"): lambda: [_kron_features],
    ("notebook_04", "q3"): lambda: [34336, _params(keras.layers.Dense(16), (None, 65 * 33))],
    ("notebook_04", "q4"): lambda: [6292, _params(keras.layers.Dense(4 * 16, use_bias=False),
                                                  (None, 65))
                                    + _params(keras.layers.Dense(4 * 16, use_bias=False),
                                              (None, 33)) + 4 + 16],
    ("notebook_04", "q5"): lambda: [_other_article_model()],
    ("notebook_04", "q6"): lambda: [train("match", "multiply", epochs=5, seed=0,
                                          keep_model=True, log=None, validate=False)["model"]],
    ("notebook_05", "q1"): lambda: [
        lambda b, r: {(32, 2): 64, (64, 8): 512, (16, 1): 16, (8, 3): 24}[(b, r)]],
    ("notebook_05", "q2"): lambda: [
        lambda h: {(0.97, 0.71): 0.26, (0.9, 0.6): 0.3, (0.8, 0.85): -0.05}[
            (h["accuracy"][-1], h["val_accuracy"][-1])]],
    ("notebook_05", "q3"): lambda: [_small_data_model_fit_on_arrays()],
    ("notebook_05", "q4"): lambda: [_cosine_by_keras],
    ("notebook_06", "q1"): lambda: [  # scores 2, 0, 1 halved, by hand; and by TensorFlow
        np.exp([1.0, 0.0, 0.5]) / np.exp([1.0, 0.0, 0.5]).sum(),
        tf.nn.softmax(tf.matmul(tf.constant([[1.0, 0.0, 1.0, 0.0]]), tf.constant(
            [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]]),
            transpose_b=True) / 2.0).numpy()[0]],
    ("notebook_06", "q2"): lambda: [_keras_scaled_attention],
    ("notebook_06", "q3"): lambda: [1296, len([(i, j) for i in range(36) for j in range(36)])],
    ("notebook_06", "q4"): lambda: [_ablated_by_set_weights()],
    ("notebook_07", "q1"): lambda: [(196, 768), [14 * 14, 16 * 16 * 3]],
    ("notebook_07", "q2"): lambda: [_keras_clip_loss],
    ("notebook_07", "q3"): lambda: [0.5, 2 / 4],  # rows 0 and 3 hit (row 0 via the twin caption)
    ("notebook_07", "q4"): lambda: [_stored_clip_losses_by_keras()],
    ("notebook_08", "q1"): lambda: [_keras_causal_mask],
    ("notebook_08", "q2"): lambda: [20_979_712, _params(keras.Sequential([  # by hand, by Keras
        keras.layers.Dense(4096, activation="gelu"), keras.layers.Dense(4096)]),
        (None, 576, 1024))],
    ("notebook_08", "q3"): lambda: [(2608, 97),  # (66 + 97) * 32 / 2 by hand; 66 + 31
                                    (len([1 for step in range(32) for _ in range(66 + step)]),
                                     len(range(66)) + len(range(31)))],
    ("notebook_08", "q4"): lambda: [_closed_gates_by_the_text_decoder()],
    ("notebook_09", "q1"): lambda: [["红", "色", "圆", "形", "在", "左", "边"],  # by hand
                                    list("红色圆形在左边")],
    ("notebook_09", "q2"): lambda: [[5, 6, 7], _problem_lines_by_hand()],
    ("notebook_09", "q3"): lambda: [[True, False, True, True, False]],
    ("notebook_09", "q4"): lambda: [_another_image_only_run()],
    ("notebook_10", "q1"): lambda: [_best_batch_by_sorting],
    ("notebook_10", "q2"): lambda: [_rest_body_by_hand()],
    ("notebook_10", "q3"): lambda: [[True, False, True, True]],
    ("notebook_10", "q4"): lambda: [_files_of_a_larger_model()],
    ("notebook_11", "q1"): lambda: [_keras_hub_rms_norm],
    ("notebook_11", "q2"): lambda: [_kv_cache_by_allocating],
    ("notebook_11", "q3"): lambda: [_paligemma_block_mask()],
    ("notebook_11", "q4"): lambda: [_order_gaps_by_keras_hub()],
    ("notebook_12", "q1"): lambda: [_lora_count_by_keras],
    ("notebook_12", "q2"): lambda: [_keras_int8_round_trip],
    ("notebook_12", "q3"): lambda: [_lora_ranks_trained_by_keras()],
    ("notebook_13", "q1"): lambda: [
        lambda n, length, step: int(tf.signal.frame(tf.zeros(n), length, step).shape[0])],
    ("notebook_13", "q2"): lambda: [_whisper_log_mel_by_tf()],
    ("notebook_13", "q3"): lambda: [
        lambda videos, seed: np.stack([np.roll(clip, 3, axis=0) for clip in videos]),
        lambda videos, seed: tf.reverse(tf.constant(videos), axis=[1]).numpy()],
}


def _whisper_log_mel_by_tf():
    """Whisper's log-mel of q2's second of white noise (seed 13, std 0.1) by tf.signal."""
    noise = (0.1 * np.random.default_rng(13).standard_normal(16000)).astype(np.float32)
    magnitude = tf.abs(tf.signal.stft(noise, 400, 160, 512))
    mel = tf.signal.linear_to_mel_weight_matrix(80, 257, 16000, 0.0, 8000.0)
    return tf.math.log(tf.matmul(magnitude, mel) + 1e-6).numpy()


def _cosine_by_keras(initial, epochs, warmup_epochs, epoch):
    """Notebook 05's schedule by Keras: CosineDecay after the warm-up, whose rate is
    initial * (epoch + 1) / (warmup_epochs + 1) written as np.interp over the warm-up."""
    if epoch < warmup_epochs:
        return float(np.interp(epoch + 1, [0, warmup_epochs + 1], [0.0, initial]))
    decay = keras.optimizers.schedules.CosineDecay(initial, decay_steps=epochs - 1 - warmup_epochs)
    return float(decay(epoch - warmup_epochs))


def _keras_hub_rms_norm(x, scale, epsilon):
    """Gemma's own RMSNormalization layer, in float64."""
    from keras_hub.src.models.gemma.rms_normalization import RMSNormalization

    layer = RMSNormalization(epsilon=epsilon, dtype="float64")
    layer.build(np.shape(x))
    layer.scale.assign(np.asarray(scale, np.float64))
    return np.asarray(layer(np.asarray(x, np.float64)))


def _kv_cache_by_allocating(num_layers, num_query_heads, num_key_value_heads, head_dim,
                            sequence_length, bytes_per_value=2):
    """The bytes of a cache shaped as KerasHub's Gemma keeps it: (layers, K and V, length,
    K/V heads, head_dim), one value of bytes_per_value bytes each (np.empty allocates lazily)."""
    shape = (num_layers, 2, sequence_length, num_key_value_heads, head_dim)
    return np.empty(shape, dtype=f"V{bytes_per_value}").nbytes


def _paligemma_block_mask():
    """KerasHub's PaliGemma decoder block's own mask for 2 image, 2 prompt, 2 response tokens."""
    from keras_hub.src.models.pali_gemma.pali_gemma_decoder_block import PaliGemmaDecoderBlock

    block = PaliGemmaDecoderBlock(hidden_dim=8, intermediate_dim=8, head_dim=4,
                                  num_query_heads=2, num_key_value_heads=1)
    mask = block._compute_attention_mask(np.zeros((1, 6, 8), "float32"),
                                         np.ones((1, 4), "int32"), None, 0,
                                         np.array([[0, 0, 1, 1]], "int32"))
    return np.asarray(mask)[0].astype(bool)


def _order_gaps_by_keras_hub():
    """With RoPE: the gap measured with KerasHub's own forward pass. Without RoPE: 0, by
    reasoning: with no positions, attention over the all-prefix prompt is order-blind and
    the last token is the same."""
    from mmcourse.exercises.notebook_11 import q4_model

    backbone, images, first, second = q4_model()
    last = []
    for ids in (first, second):
        inputs = {"images": images, "token_ids": ids, "padding_mask": np.ones_like(ids),
                  "response_mask": np.zeros_like(ids)}
        logits = backbone.token_embedding(backbone(inputs), reverse=True)
        last.append(np.asarray(logits)[0, -1])
    return [float(np.abs(last[0] - last[1]).max()), 0.0]


def _lora_count_by_keras(d_in, d_out, rank):
    """The weights Keras' Dense.enable_lora(rank) makes trainable, counted."""
    layer = keras.layers.Dense(d_out, use_bias=False)
    layer.build((None, d_in))
    layer.enable_lora(rank)
    return sum(int(np.prod(w.shape)) for w in layer.trainable_weights)


def _keras_int8_round_trip(kernel):
    """Keras' own Dense.quantize("int8"): the stored int8 kernel over its stored scales."""
    layer = keras.layers.Dense(kernel.shape[1], use_bias=False)
    layer.build((None, kernel.shape[0]))
    layer.kernel.assign(kernel)
    layer.quantize("int8")
    return np.asarray(layer._kernel, np.float32) / np.asarray(layer.kernel_scale, np.float32)


def _lora_ranks_trained_by_keras():
    """Ranks 1 and 16 trained with KerasHub's backbone.enable_lora and Keras' own compile/fit
    on the preprocessor's arrays (not mmcourse.apps.finetune or hub_training)."""
    from mmcourse.exercises.notebook_12 import Q3_EPOCHS, Q3_LEARNING_RATE, q3_base, q3_data

    images, captions = q3_data()["train"]
    models = {}
    for rank in (1, 16):
        model = q3_base()
        keras.utils.set_random_seed(1)
        model.backbone.enable_lora(rank)
        inputs, labels, weights = model.preprocessor(
            {"images": images, "prompts": ["caption zh\n"] * len(images),
             "responses": captions})
        preprocessor, model.preprocessor = model.preprocessor, None
        model.compile(optimizer=keras.optimizers.Adam(Q3_LEARNING_RATE),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(inputs, labels, sample_weight=weights, epochs=Q3_EPOCHS, batch_size=32,
                  shuffle=False, verbose=0)
        model.preprocessor = preprocessor
        models[rank] = model
    return models


def _rest_body_by_hand():
    """TF Serving's documented REST body, built with the standard library from the PNG."""
    import base64

    from mmcourse.exercises.notebook_10 import Q2_PNG, Q2_TEXT

    return json.loads(json.dumps({"signature_name": "serving_default", "instances": [
        {"image": {"b64": base64.standard_b64encode(Q2_PNG).decode()}, "text": Q2_TEXT}]}))


def _keras_clip_loss(image_embeddings, text_embeddings, temperature):
    """CLIP's loss from Keras' cross-entropy over the rows and the columns of the logits."""
    image = tf.math.l2_normalize(tf.constant(image_embeddings, tf.float64), axis=1)
    text = tf.math.l2_normalize(tf.constant(text_embeddings, tf.float64), axis=1)
    logits = tf.matmul(image, text, transpose_b=True) / temperature
    targets = tf.eye(len(image_embeddings), dtype=tf.float64)
    cross_entropy = keras.losses.CategoricalCrossentropy(from_logits=True)
    return (float(cross_entropy(targets, logits)) + float(cross_entropy(targets,
                                                                         tf.transpose(logits)))) / 2


def _keras_causal_mask(length):
    """Which keys each query of Keras' MultiHeadAttention(use_causal_mask=True) weights."""
    attention = keras.layers.MultiHeadAttention(num_heads=1, key_dim=2)
    x = np.ones((1, length, 3), "float32")
    _, scores = attention(x, x, use_causal_mask=True, return_attention_scores=True)
    return np.asarray(scores)[0, 0] > 0


def _closed_gates_by_the_text_decoder():
    """notebook 08 q4: a Flamingo with closed gates is its frozen text decoder, so the stored
    text decoder's own greedy caption, once per image, is what the experiment gives."""
    from mmcourse import REPO_ROOT, vlm

    decoder = keras.saving.load_model(REPO_ROOT / "docs" / "results" / "vlm_decoder.keras",
                                      safe_mode=True)
    return vlm.generate(decoder, max_length=8) * 50


def _problem_lines_by_hand():
    """notebook 09 q2: the lines of Q2_CSV with an empty text, a label outside 0/1 or a file
    that does not exist, found with Python's csv module and the file's own line breaks."""
    import csv
    import io

    from mmcourse.exercises.notebook_09 import Q2_CSV

    reader = csv.reader(io.StringIO(Q2_CSV, newline=""))
    next(reader)
    lines, start = [], 2
    for image, text, label in reader:
        if not text or label not in ("0", "1") or image not in ("a.png", "b.png"):
            lines.append(start)
        start = reader.line_num + 1
    return lines


def _keras_train_once(seed):
    """notebook 00 q4 built another way: Keras' own seeding, the functional API, explicit
    optimizer and loss objects (SGD's default rate is 'sgd''s)."""
    from mmcourse.exercises.notebook_00 import Q4_X, Q4_Y

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")  # made first: it draws its seed first
    outputs = keras.layers.Dense(1)(hidden(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(), loss=keras.losses.MeanSquaredError())
    return model.fit(Q4_X, Q4_Y, epochs=3, batch_size=16, verbose=0).history["loss"][-1]


def _small_data_model_fit_on_arrays():
    """notebook 05 q3 another way: Keras' fit on NumPy arrays, another seed and batch size."""
    from mmcourse.matcher.model import build_model
    from mmcourse.train.tasks import load_split

    images, token_ids, labels = load_split("match", "attributes", "train", limit=64)
    keras.utils.set_random_seed(1)
    model = build_model("match", "concat", learning_rate=0.005, hidden_units=128)
    model.fit([images.astype("float32") / 255, token_ids], labels, batch_size=16, epochs=20,
              shuffle=True, verbose=0)
    return model


def _smallest_vocabulary_by_keras():
    """notebook 01 q5: Keras' TextVectorization ranks the words by frequency; the OOV rate is
    counted by hand with str.split (the captions are lower-case words)."""
    from mmcourse.data.scenes import load_records

    train, val = ([r["text"] for r in load_records("match", "relations", split)]
                  for split in ("train", "val"))
    vectorizer = keras.layers.TextVectorization()
    vectorizer.adapt(train)
    ranked = vectorizer.get_vocabulary()
    val_words = [word for caption in val for word in caption.split()]
    for size in range(2, len(ranked) + 1):
        known = set(ranked[:size])
        if sum(word not in known for word in val_words) <= 0.05 * len(val_words):
            return ranked[:size]
    raise AssertionError("no vocabulary meets the bound")


def _pooling_first_design():
    """notebook 02 q5: another design, functional, pooling first: r = 24."""
    inputs = keras.Input((32, 32, 1))
    x = keras.layers.MaxPooling2D((2, 2))(inputs)
    x = keras.layers.Conv2D(2, (3, 3))(x)
    x = keras.layers.MaxPooling2D(pool_size=2, strides=2)(x)
    x = keras.layers.Conv2D(2, (3, 3))(x)
    return keras.Model(inputs, keras.layers.Conv2D(2, (3, 3))(x))


def _lstm_with_forget_bias_initializer():
    """notebook 03 q5: the forget bias set through an initializer, not set_weights."""
    def bias(shape, dtype=None):
        return tf.constant(np.repeat([0.0, 4.0, 0.0, 0.0], 32), dtype=dtype)

    return keras.layers.LSTM(32, unit_forget_bias=False, bias_initializer=bias)


def _ablated_by_set_weights():
    """notebook 06 q4: the stored model through Keras' loader, hop2's scale weights zeroed
    by their paths with set_weights."""
    from mmcourse import REPO_ROOT
    from mmcourse.matcher import model as models  # noqa: F401 - registers the course's layers

    model = keras.saving.load_model(REPO_ROOT / "docs" / "results" /
                                    "relations_anchored_qa.keras", safe_mode=True)
    layer = model.get_layer("hop2")
    layer.set_weights([np.zeros_like(value) if variable.path.split("/")[-1].startswith("scale")
                       else value for variable, value in zip(layer.weights, layer.get_weights(),
                                                             strict=True)])
    return model


def _stored_clip_losses_by_keras():
    """notebook 07 q4: the stored model's embeddings, scored by Keras' cross-entropy."""
    from mmcourse import REPO_ROOT, clip
    from mmcourse.data import text
    from mmcourse.data.scenes import load_arrays

    model = keras.saving.load_model(REPO_ROOT / "docs" / "results" / "clip_attributes.keras",
                                    safe_mode=True)
    images, captions, _ = load_arrays("retrieval", "attributes", "test")
    image_embeddings = clip.embed_images(model, images[:64])
    text_embeddings = clip.embed_texts(model, text.vectorize(list(captions[:64])))
    return [_keras_clip_loss(image_embeddings, text_embeddings, temperature)
            for temperature in (float(model.get_layer("logits").temperature), 1.0)]


def _another_image_only_run():
    """notebook 09 q4: another folder, seed and number of epochs; still exactly one half."""
    import tempfile
    from pathlib import Path

    from mmcourse.apps import owndata
    from mmcourse.data import scans

    folder = scans.write_scan_folder(Path(tempfile.mkdtemp()) / "scans", count=30, seed=5)
    return owndata.train_folder(folder, fusion="image", epochs=2, seed=3, log=None,
                                keep_model=True)


def _best_batch_by_sorting(seconds_per_batch):
    """notebook 10 q1: sort by throughput, take the first within the 50 ms budget."""
    ranked = sorted(seconds_per_batch.items(), key=lambda item: -item[0] / item[1])
    return next(size for size, seconds in ranked if seconds <= 0.05)


def _files_of_a_larger_model():
    """notebook 10 q4: another model (a larger vocabulary), converted by the course's tool."""
    from mmcourse.apps import deploy
    from mmcourse.matcher import model as models

    model = models.build_model("match", "concat", vocabulary_size=200, sequence_length=12)
    return [deploy.convert_tflite(model, quantize=False),
            deploy.convert_tflite(model, quantize=True)]


def test_every_exercise_has_independent_answers():
    exercises = {(name, exercise.name) for name, factory in SETS.items() for exercise in factory()}
    assert exercises <= set(INDEPENDENT), \
        f"add independent answers for {sorted(exercises - set(INDEPENDENT))}"


@pytest.mark.parametrize(("name", "index"), EXERCISES)
def test_checker_accepts_independent_answers(name, index):
    exercise = _exercise(name, index)
    answers = INDEPENDENT[(name, exercise.name)]()
    assert answers
    for answer in answers:
        feedback = exercise.check(answer)
        assert feedback.correct, f"{answer!r}: {feedback}"


def test_the_independent_oracles_agree_with_hand_computed_values():
    """The Keras/TF-based oracles above, on small cases worked out by hand."""
    assert _tf_same_padding(5, 3, 1) == (1, 1)  # out 5: (5 - 1) * 1 + 3 - 5 = 2 in all
    assert _tf_same_padding(6, 4, 2) == (1, 1)  # out 3: (3 - 1) * 2 + 4 - 6 = 2
    assert _tf_same_padding(7, 4, 1) == (1, 2)  # 3 in all: the extra one goes after
    assert _tf_same_padding(5, 1, 3) == (0, 0)  # out 2: (2 - 1) * 3 + 1 - 5 < 0 -> 0
    np.testing.assert_allclose(_kron_features(np.array([[2.0, 3.0]]), np.array([[5.0]])),
                               [[1, 5, 2, 10, 3, 15]])
    np.testing.assert_allclose(np.random.default_rng(0).normal(size=3),
                               [0.12573022, -0.13210486, 0.64042265], atol=1e-8)
    kernel = np.arange(24, dtype=float).reshape(3, 8) / 24  # units 2: forget = columns 2, 3
    np.testing.assert_allclose(_keras_forget_kernel(kernel), kernel[:, 2:4], atol=1e-8)
    np.testing.assert_allclose(_keras_rnn_step(np.array([[1.0, 2.0]]), np.array([[1.0, -1.0]]),
                                               np.eye(2), np.array([[0.5, -1.0], [0.0, 2.0]]),
                                               np.array([0.0, 1.0])), [[np.tanh(1.5), 0.0]])
    assert _keras_padding_mask([[4, 0, 1]]).tolist() == [[True, False, True]]
    # notebook 02 q5's checker measures receptive fields with scratch.receptive_field: Keras'
    # gradients agree on conv 3, pool 2, conv 3
    from mmcourse import scratch

    assert scratch.receptive_field([(3, 1), (2, 2), (3, 1)]) == _keras_receptive_field() == 8


@pytest.mark.parametrize("name", sorted(SETS))
def test_each_exercise_has_one_starter_cell_stored_as_not_attempted(name):
    """CONTRIBUTING's convention: one starter cell per question, with the placeholder and
    exactly one ex.qN.check(...) call, stored with its "Not attempted" output (a starter
    function that still returns ____ must not count as a wrong answer)."""
    import re

    number = name.removeprefix("notebook_")
    (path,) = sorted(NOTEBOOKS_DIR.glob(f"{number}_*.ipynb"))
    starters = {}
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        calls = re.findall(r"\bex\.(q\d+)\.check\(", source)
        if cell["cell_type"] != "code" or not calls:
            continue
        assert len(calls) == 1, f"{path.name}: one check per starter cell, got {calls}"
        assert "____" in source, f"{path.name} {calls[0]}: the starter has no ____"
        shown = "".join("".join(output.get("text", "")) + "".join(
            output.get("data", {}).get("text/plain", "")) for output in cell.get("outputs", []))
        assert "Not attempted" in shown, f"{path.name} {calls[0]}: stored output {shown!r}"
        starters[calls[0]] = starters.get(calls[0], 0) + 1
    assert starters == {exercise.name: 1 for exercise in SETS[name]()}, path.name
