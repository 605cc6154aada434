"""mmcourse.scratch's recurrent layers (notebook 03) against Keras with the same weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmcourse import scratch

ATOL = 1e-5  # float64 throughout, unless a test says otherwise


def _config(seed):
    """A random (batch, time, features, units, with_initial_state) configuration."""
    rng = np.random.default_rng(seed)
    steps = 1 if seed % 5 == 0 else int(rng.integers(2, 10))  # T=1 every fifth config
    return (int(rng.integers(1, 5)), steps, int(rng.integers(1, 8)), int(rng.integers(1, 10)),
            bool(seed % 2))


def _keras_layer(kind, features, units, rng, dtype="float64", scale=0.6, **options):
    """A built Keras SimpleRNN/LSTM with random weights (bias included) in ``dtype``."""
    cls = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM}[kind]
    layer = cls(units, return_sequences=True, dtype=dtype, **options)
    layer.build((None, None, features))
    weights = [(rng.normal(size=w.shape) * scale).astype(dtype) for w in layer.get_weights()]
    layer.set_weights(weights)
    return layer, weights


def _states(rng, batch, units, count, dtype="float64"):
    return [rng.normal(size=(batch, units)).astype(dtype) for _ in range(count)]


# --- forward passes equal Keras ---------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_simple_rnn_matches_keras(seed):
    batch, steps, features, units, with_h0 = _config(seed)
    rng = np.random.default_rng(100 + seed)
    layer, weights = _keras_layer("simple_rnn", features, units, rng)
    x = rng.normal(size=(batch, steps, features))
    if with_h0:
        (h0,) = _states(rng, batch, units, 1)
        expected = layer(x, initial_state=[h0])
    else:
        h0, expected = None, layer(x)
    mine = scratch.simple_rnn(x, *weights, h0=h0)
    assert mine.shape == (batch, steps, units) and mine.dtype == np.float64
    np.testing.assert_allclose(mine, np.asarray(expected), rtol=0, atol=ATOL)


@pytest.mark.parametrize("seed", range(12))
def test_lstm_matches_keras(seed):
    batch, steps, features, units, with_state = _config(seed)
    rng = np.random.default_rng(200 + seed)
    layer, weights = _keras_layer("lstm", features, units, rng)
    x = rng.normal(size=(batch, steps, features))
    if with_state:
        h0, c0 = _states(rng, batch, units, 2)
        expected = layer(x, initial_state=[h0, c0])
    else:
        h0 = c0 = None
        expected = layer(x)
    mine = scratch.lstm(x, *weights, h0=h0, c0=c0)
    assert mine.shape == (batch, steps, units)
    np.testing.assert_allclose(mine, np.asarray(expected), rtol=0, atol=ATOL)


def test_lstm_only_h0_means_zero_c0():
    rng = np.random.default_rng(7)
    layer, weights = _keras_layer("lstm", 3, 4, rng)
    x = rng.normal(size=(2, 5, 3))
    (h0,) = _states(rng, 2, 4, 1)
    expected = layer(x, initial_state=[h0, np.zeros((2, 4))])
    np.testing.assert_allclose(scratch.lstm(x, *weights, h0=h0), expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm"])
def test_float32_stays_float32_and_matches_keras(kind):
    # float32 carries ~7 digits; tanh/sigmoid keep values O(1) and T=8 steps add a few
    # roundings each, so agreement to 1e-5 (about 100 ulps) is a safe float32 tolerance.
    rng = np.random.default_rng(3)
    layer, weights = _keras_layer(kind, 5, 7, rng, dtype="float32")
    x = rng.normal(size=(3, 8, 5)).astype(np.float32)
    mine = getattr(scratch, kind)(x, *weights)
    assert mine.dtype == np.float32
    np.testing.assert_allclose(mine, np.asarray(layer(x)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm"])
def test_without_bias_matches_keras_use_bias_false(kind):
    rng = np.random.default_rng(4)
    layer, weights = _keras_layer(kind, 3, 4, rng, use_bias=False)
    assert len(weights) == 2
    x = rng.normal(size=(2, 6, 3))
    np.testing.assert_allclose(getattr(scratch, kind)(x, *weights, None), np.asarray(layer(x)),
                               rtol=0, atol=ATOL)


def test_other_activations_match_keras():
    rng = np.random.default_rng(5)
    layer, weights = _keras_layer("simple_rnn", 3, 4, rng, scale=0.3, activation="relu")
    x = rng.normal(size=(2, 6, 3))
    np.testing.assert_allclose(scratch.simple_rnn(x, *weights, activation="relu"),
                               np.asarray(layer(x)), rtol=0, atol=ATOL)
    layer, weights = _keras_layer("lstm", 3, 4, rng, activation="relu",
                                  recurrent_activation="tanh")
    np.testing.assert_allclose(
        scratch.lstm(x, *weights, activation="relu", recurrent_activation="tanh"),
        np.asarray(layer(x)), rtol=0, atol=ATOL)


def test_accepts_tensors_and_lists():
    rng = np.random.default_rng(6)
    layer, weights = _keras_layer("simple_rnn", 2, 3, rng)
    x = rng.normal(size=(1, 4, 2))
    expected = np.asarray(layer(x))
    from_tensors = scratch.simple_rnn(tf.constant(x), *[w for w in layer.weights])
    from_lists = scratch.simple_rnn(x.tolist(), *[w.tolist() for w in weights])
    np.testing.assert_allclose(from_tensors, expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(from_lists, expected, rtol=0, atol=ATOL)


# --- single steps and gates ----------------------------------------------------------


def test_simple_rnn_step_is_one_step_of_simple_rnn():
    rng = np.random.default_rng(8)
    kernel, recurrent_kernel, bias = rng.normal(size=(4, 5)), rng.normal(size=(5, 5)), \
        rng.normal(size=5)
    x, h_prev = rng.normal(size=(3, 4)), rng.normal(size=(3, 5))
    step = scratch.simple_rnn_step(x, h_prev, kernel, recurrent_kernel, bias)
    np.testing.assert_allclose(step, np.tanh(x @ kernel + h_prev @ recurrent_kernel + bias))
    np.testing.assert_allclose(
        step, scratch.simple_rnn(x[:, None], kernel, recurrent_kernel, bias, h_prev)[:, 0])


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "linear"])
def test_simple_rnn_step_applies_its_activation_like_keras(activation):
    rng = np.random.default_rng(10)
    layer, (kernel, recurrent_kernel, bias) = _keras_layer("simple_rnn", 4, 5, rng,
                                                          activation=activation)
    x, h_prev = rng.normal(size=(3, 4)), rng.normal(size=(3, 5))
    step = scratch.simple_rnn_step(x, h_prev, kernel, recurrent_kernel, bias,
                                   activation=activation)
    expected = np.asarray(layer(x[:, None], initial_state=[h_prev]))[:, 0]
    np.testing.assert_allclose(step, expected, rtol=0, atol=ATOL)
    assert not np.allclose(step, np.tanh(x @ kernel + h_prev @ recurrent_kernel + bias))


def test_simple_rnn_step_by_hand():
    # x W = [1, 2], h U = [0.5, -3], b = [0, 1]: the pre-activation is [1.5, 0]
    x, h_prev = np.array([[1.0, 2.0]]), np.array([[1.0, -1.0]])
    kernel, recurrent_kernel = np.eye(2), np.array([[0.5, -1.0], [0.0, 2.0]])
    bias = np.array([0.0, 1.0])
    for activation, expected in (("relu", [1.5, 0.0]), ("linear", [1.5, 0.0]),
                                 ("tanh", [np.tanh(1.5), 0.0])):
        np.testing.assert_allclose(scratch.simple_rnn_step(x, h_prev, kernel, recurrent_kernel,
                                                           bias, activation=activation),
                                   [expected])
    np.testing.assert_allclose(scratch.simple_rnn_step(-x, h_prev, kernel, recurrent_kernel,
                                                       bias, activation="relu"), [[0.0, 0.0]])


def test_lstm_gates_are_keras_slices_in_order_ifco():
    rng = np.random.default_rng(9)
    layer, (kernel, recurrent_kernel, bias) = _keras_layer("lstm", 3, 4, rng)
    x, h_prev, c_prev = rng.normal(size=(2, 3)), *_states(rng, 2, 4, 2)
    gates = scratch.lstm_gates(x, h_prev, kernel, recurrent_kernel, bias)
    assert tuple(gates) == scratch.LSTM_GATES == ("i", "f", "c", "o")
    for k, name in enumerate(scratch.LSTM_GATES):
        block = slice(4 * k, 4 * (k + 1))
        z = x @ kernel[:, block] + h_prev @ recurrent_kernel[:, block] + bias[block]
        expected = np.tanh(z) if name == "c" else 1 / (1 + np.exp(-z))
        np.testing.assert_allclose(gates[name], expected)
    h, c = scratch.lstm_step(x, h_prev, c_prev, kernel, recurrent_kernel, bias)
    np.testing.assert_allclose(c, gates["f"] * c_prev + gates["i"] * gates["c"])
    expected_h = layer(x[:, None], initial_state=[h_prev, c_prev])[:, 0]
    np.testing.assert_allclose(h, np.asarray(expected_h), rtol=0, atol=ATOL)
    hidden, cells = scratch.lstm(x[:, None], kernel, recurrent_kernel, bias, h_prev, c_prev,
                                 return_cell_states=True)
    np.testing.assert_allclose(cells[:, 0], c)


@pytest.mark.parametrize(("features", "units"), [(1, 1), (8, 16), (32, 64)])
def test_lstm_param_count_matches_keras(features, units):
    layer = keras.layers.LSTM(units)
    layer.build((None, None, features))
    assert scratch.lstm_param_count(features, units) == layer.count_params()
    assert scratch.lstm_param_count(features, units) == 4 * (features * units + units ** 2 + units)


@pytest.mark.parametrize(("features", "units"), [(3, 4), (8, 16)])
def test_lstm_param_count_without_bias_matches_keras(features, units):
    layer = keras.layers.LSTM(units, use_bias=False)
    layer.build((None, None, features))
    assert scratch.lstm_param_count(features, units, use_bias=False) == layer.count_params()
    assert scratch.lstm_param_count(3, 4, use_bias=False) == 112  # 4 * (3*4 + 4*4), no 4*4 bias
    assert scratch.lstm_param_count(3, 4) == 128


def test_lstm_param_count_rejects_bad_sizes():
    with pytest.raises(ValueError, match="units must be a positive int"):
        scratch.lstm_param_count(3, 0)


# --- masking ---------------------------------------------------------------------------


def _random_mask(rng, batch, steps, first_step_real):
    mask = rng.random((batch, steps)) > 0.35
    lengths = rng.integers(1, steps + 1, size=batch)
    mask[:batch // 2] = np.arange(steps) < lengths[:batch // 2, None]  # post-padding rows
    if first_step_real:
        mask[:, 0] = True
    return mask


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm"])
@pytest.mark.parametrize("seed", range(3))
def test_masking_matches_keras(kind, seed):
    rng = np.random.default_rng(300 + seed)
    batch, steps, features, units = 4, 7, 3, 5
    layer, weights = _keras_layer(kind, features, units, rng)
    x = rng.normal(size=(batch, steps, features))
    count = 1 if kind == "simple_rnn" else 2
    # Without an initial state any mask works (rows fully masked included) ...
    mask = _random_mask(rng, batch, steps, first_step_real=False)
    mask[-1] = False
    mine = getattr(scratch, kind)(x, *weights, mask=mask)
    np.testing.assert_allclose(mine, np.asarray(layer(x, mask=mask)), rtol=0, atol=ATOL)
    # ... and masked steps really carry the state.
    for row, t in zip(*np.nonzero(~mask), strict=True):
        previous = mine[row, t - 1] if t else np.zeros(units)
        np.testing.assert_array_equal(mine[row, t], previous)
    # With an initial state, as long as the first step is real (see the next test).
    mask = _random_mask(rng, batch, steps, first_step_real=True)
    states = _states(rng, batch, units, count)
    mine = getattr(scratch, kind)(x, *weights, *states, mask=mask)
    expected = layer(x, initial_state=states, mask=mask)
    np.testing.assert_allclose(mine, np.asarray(expected), rtol=0, atol=ATOL)


def test_leading_padding_with_initial_state_keeps_h0_and_final_state_matches_keras():
    rng = np.random.default_rng(11)
    layer, weights = _keras_layer("lstm", 3, 4, rng)
    keras_with_state = keras.layers.LSTM(4, return_sequences=True, return_state=True,
                                         dtype="float64")
    keras_with_state.build((None, None, 3))
    keras_with_state.set_weights(weights)
    x = rng.normal(size=(2, 5, 3))
    h0, c0 = _states(rng, 2, 4, 2)
    mask = np.array([[False, False, True, True, False], [True] * 5])
    hidden, cells = scratch.lstm(x, *weights, h0, c0, mask=mask, return_cell_states=True)
    np.testing.assert_array_equal(hidden[0, :2], [h0[0], h0[0]])  # carried, not zeroed
    _, final_h, final_c = keras_with_state(x, initial_state=[h0, c0], mask=mask)
    np.testing.assert_allclose(hidden[:, -1], np.asarray(final_h), rtol=0, atol=ATOL)
    np.testing.assert_allclose(cells[:, -1], np.asarray(final_c), rtol=0, atol=ATOL)


def test_mask_from_keras_embedding_matches_keras_pipeline():
    rng = np.random.default_rng(12)
    token_ids = np.array([[5, 2, 7, 0, 0, 0], [1, 3, 3, 8, 2, 0]])
    embedding = keras.layers.Embedding(10, 4, mask_zero=True, dtype="float64")
    layer, weights = _keras_layer("lstm", 4, 3, rng)
    vectors = embedding(token_ids)
    expected = layer(vectors, mask=embedding.compute_mask(token_ids))
    table = embedding.get_weights()[0]
    mine = scratch.lstm(table[token_ids], *weights, mask=token_ids != 0)
    np.testing.assert_allclose(mine, np.asarray(expected), rtol=0, atol=ATOL)
    # Padding does not change the last state: the unpadded sentence ends in the same place.
    short = scratch.lstm(table[token_ids[:1, :3]], *weights)
    np.testing.assert_allclose(mine[0, -1], short[0, -1])


def test_integer_mask_is_accepted():
    rng = np.random.default_rng(13)
    _, weights = _keras_layer("simple_rnn", 2, 3, rng)
    x = rng.normal(size=(2, 4, 2))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0]])
    np.testing.assert_array_equal(scratch.simple_rnn(x, *weights, mask=mask),
                                  scratch.simple_rnn(x, *weights, mask=mask.astype(bool)))


# --- backpropagation through time ------------------------------------------------------


def _tape_gradients(layer, x, grad_hidden_states, h0=None, mask=None):
    """dL/d(x, kernel, recurrent_kernel, bias, h0) for L = sum(h * G) via tf.GradientTape."""
    x = tf.constant(x)
    h0 = tf.constant(h0) if h0 is not None else tf.zeros((x.shape[0], layer.units), tf.float64)
    with tf.GradientTape() as tape:
        tape.watch([x, h0])
        hidden = layer(x, initial_state=[h0], mask=mask)
        loss = tf.reduce_sum(hidden * grad_hidden_states)
    kernel, recurrent_kernel, bias = layer.trainable_weights
    assert "recurrent" in recurrent_kernel.path and "bias" in bias.path
    return [g.numpy() for g in tape.gradient(loss, [x, kernel, recurrent_kernel, bias, h0])]


@pytest.mark.parametrize("seed", range(6))
def test_simple_rnn_backward_matches_gradient_tape(seed):
    batch, steps, features, units, with_h0 = _config(400 + seed)
    rng = np.random.default_rng(400 + seed)
    layer, weights = _keras_layer("simple_rnn", features, units, rng)
    x = rng.normal(size=(batch, steps, features))
    grad_hidden_states = rng.normal(size=(batch, steps, units))
    h0 = _states(rng, batch, units, 1)[0] if with_h0 else None
    mask = None
    if seed >= 4:  # masked, first step real so Keras's outputs are the states
        mask = _random_mask(rng, batch, steps, first_step_real=True)
    expected = _tape_gradients(layer, x, grad_hidden_states, h0, mask)
    mine = scratch.simple_rnn_backward(x, *weights, grad_hidden_states, h0, mask=mask,
                                       return_grad_h0=True)
    names = ["grad_x", "grad_kernel", "grad_recurrent_kernel", "grad_bias", "grad_h0"]
    for name, got, want in zip(names, mine, expected, strict=True):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("masked", [False, True])
def test_simple_rnn_backward_matches_numerical_gradient(masked):
    rng = np.random.default_rng(14)
    x = rng.normal(size=(2, 4, 3))
    kernel, recurrent_kernel = rng.normal(size=(3, 3)) * 0.7, rng.normal(size=(3, 3)) * 0.7
    bias, h0 = rng.normal(size=3) * 0.5, rng.normal(size=(2, 3))
    grad_hidden_states = rng.normal(size=(2, 4, 3))
    mask = np.array([[True, False, True, True], [True, True, True, False]]) if masked else None

    def loss(x, kernel, recurrent_kernel, bias, h0):
        hidden = scratch.simple_rnn(x, kernel, recurrent_kernel, bias, h0, mask=mask)
        return float(np.sum(hidden * grad_hidden_states))

    arguments = [x, kernel, recurrent_kernel, bias, h0]
    analytic = scratch.simple_rnn_backward(x, kernel, recurrent_kernel, bias,
                                           grad_hidden_states, h0, mask=mask,
                                           return_grad_h0=True)
    for index, grad in enumerate(analytic):
        def partial(value, index=index):
            return loss(*arguments[:index], value, *arguments[index + 1:])

        numeric = scratch.numerical_gradient(partial, arguments[index])
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


def test_simple_rnn_backward_returns_four_gradients_by_default():
    rng = np.random.default_rng(15)
    x, weights = rng.normal(size=(1, 2, 3)), [rng.normal(size=(3, 2)), rng.normal(size=(2, 2)),
                                              np.zeros(2)]
    grads = scratch.simple_rnn_backward(x, *weights, np.ones((1, 2, 2)))
    assert [g.shape for g in grads] == [(1, 2, 3), (3, 2), (2, 2), (2,)]


# --- bad input ---------------------------------------------------------------------------

_RNG = np.random.default_rng(16)
X = _RNG.normal(size=(2, 5, 3))
W, U, B = _RNG.normal(size=(3, 4)), _RNG.normal(size=(4, 4)), np.zeros(4)
LW, LU, LB = _RNG.normal(size=(3, 16)), _RNG.normal(size=(4, 16)), np.zeros(16)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        pytest.param(lambda: scratch.simple_rnn(np.ones((2, 5)), W, U, B), ValueError,
                     r"x must be 3-D .*\(2, 5\).*kernel \(3, 4\).*Embedding", id="2d-x"),
        pytest.param(lambda: scratch.lstm(np.ones((2, 5), dtype=np.int32), LW, LU, LB),
                     ValueError, r"x must be 3-D .*\(2, 5\).*kernel \(3, 16\).*Embedding",
                     id="2d-token-ids-lstm"),
        pytest.param(lambda: scratch.simple_rnn(np.ones((2, 5, 3, 1)), W, U, B), ValueError,
                     r"x must be 3-D.*\(2, 5, 3, 1\)", id="4d-x"),
        pytest.param(lambda: scratch.simple_rnn(X, np.ones((5, 4)), U, B), ValueError,
                     r"kernel has input dim 5 but x has 3 features: x \(2, 5, 3\), "
                     r"kernel \(5, 4\)", id="kernel-input-dim"),
        pytest.param(lambda: scratch.lstm(X, np.ones((2, 16)), LU, LB), ValueError,
                     r"kernel has input dim 2 but x has 3 features", id="lstm-kernel-input-dim"),
        pytest.param(lambda: scratch.simple_rnn(X, np.ones(4), U, B), ValueError,
                     r"kernel must be 2-D", id="1d-kernel"),
        pytest.param(lambda: scratch.lstm(X, np.ones((3, 10)), LU, LB), ValueError,
                     r"kernel must have 4\*units columns.*\(3, 10\)", id="lstm-kernel-not-4u"),
        pytest.param(lambda: scratch.simple_rnn(X, W, U, np.zeros(3)), ValueError,
                     r"bias must have shape \(units,\) = \(4,\) .*kernel \(3, 4\), got bias "
                     r"\(3,\)", id="bias-length"),
        pytest.param(lambda: scratch.lstm(X, LW, LU, np.zeros(4)), ValueError,
                     r"bias must have shape \(4\*units,\) = \(16,\).*got bias \(4,\)",
                     id="lstm-bias-length"),
        pytest.param(lambda: scratch.simple_rnn(X, W, np.ones((4, 3)), B), ValueError,
                     r"recurrent_kernel must be \(units, units\) = \(4, 4\) to match kernel "
                     r"\(3, 4\), got recurrent_kernel \(4, 3\)", id="recurrent-kernel"),
        pytest.param(lambda: scratch.lstm(X, LW, np.ones((4, 4)), LB), ValueError,
                     r"recurrent_kernel must be \(units, 4\*units\) = \(4, 16\).*got "
                     r"recurrent_kernel \(4, 4\)", id="lstm-recurrent-kernel"),
        pytest.param(lambda: scratch.simple_rnn(X, W, U, B, h0=np.zeros((2, 3))), ValueError,
                     r"h0 must have shape \(batch, units\) = \(2, 4\) for x \(2, 5, 3\).*got "
                     r"h0 \(2, 3\)", id="h0-shape"),
        pytest.param(lambda: scratch.simple_rnn(X, W, U, B, h0=np.zeros(4)), ValueError,
                     r"h0 must have shape.*got h0 \(4,\)", id="h0-1d"),
        pytest.param(lambda: scratch.lstm(X, LW, LU, LB, c0=np.zeros((3, 4))), ValueError,
                     r"c0 must have shape \(batch, units\) = \(2, 4\).*got c0 \(3, 4\)",
                     id="c0-shape"),
        pytest.param(lambda: scratch.lstm(X, LW, LU, LB, mask=np.ones((2, 4), bool)),
                     ValueError, r"mask must have shape \(batch, time\) = \(2, 5\).*"
                     r"got mask \(2, 4\)", id="mask-shape"),
        pytest.param(lambda: scratch.simple_rnn(X, W, U, B, mask=np.full((2, 5), 0.5)),
                     TypeError, r"mask must hold booleans", id="mask-dtype"),
        pytest.param(lambda: scratch.simple_rnn(X, W, U, B, mask=np.array([[0, 1, 2, 1, 1]] * 2)),
                     TypeError, r"mask must hold booleans", id="mask-int-not-0-1"),
        pytest.param(lambda: scratch.lstm(X, np.ones((3, 0)), np.ones((0, 0)), np.zeros(0)),
                     ValueError, r"kernel must have 4\*units columns.*\(3, 0\)",
                     id="lstm-kernel-no-units"),
        pytest.param(lambda: scratch.simple_rnn(X, W, U, B, activation="swish"), ValueError,
                     r"unknown activation 'swish'", id="activation"),
        pytest.param(lambda: scratch.simple_rnn("hello", W, U, B), TypeError,
                     r"x must be an array-like of numbers", id="string-x"),
        pytest.param(lambda: scratch.simple_rnn_backward(X, W, U, B, np.ones((2, 5, 3))),
                     ValueError, r"grad_hidden_states must have the shape of the hidden "
                     r"states \(batch, time, units\) = \(2, 5, 4\).*\(2, 5, 3\)",
                     id="grad-shape"),
        pytest.param(lambda: scratch.simple_rnn_step(X, np.zeros((2, 4)), W, U, B), ValueError,
                     r"x_t must be 2-D \(batch, features\), got shape \(2, 5, 3\)",
                     id="step-3d-x"),
        pytest.param(lambda: scratch.simple_rnn_step(X[:, 0], np.zeros((2, 3)), W, U, B),
                     ValueError, r"h_prev must have shape \(batch, units\) = \(2, 4\)",
                     id="step-h-prev"),
        pytest.param(lambda: scratch.lstm_step(X[:, 0], None, np.zeros((1, 4)), LW, LU, LB),
                     ValueError, r"c_prev must have shape \(batch, units\) = \(2, 4\)",
                     id="step-c-prev"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
