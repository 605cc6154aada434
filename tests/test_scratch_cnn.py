"""mmcourse.scratch, notebook 02 part: dense, conv2d, pooling and their gradients vs Keras.

Keras layers are built with dtype="float64", so the NumPy code must agree to ~1e-9;
the one float32 test explains its looser tolerance.
"""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmcourse import scratch

ATOL = 1e-9  # float64 on both sides: only summation order differs


def _shapes_in_message(*shapes):
    """A regex that matches a message naming every shape, in any order."""
    return "".join(f"(?=.*{re.escape(str(tuple(shape)))})" for shape in shapes)


# --- seeded random configurations --------------------------------------------


def _conv_configs(count=40, seed=2024):
    rng = np.random.default_rng(seed)
    configs = []
    while len(configs) < count:
        kh, kw = (int(v) for v in rng.choice([1, 2, 3, 5], size=2))
        if rng.random() < 0.5:
            strides = int(rng.integers(1, 4))
        else:
            strides = tuple(int(v) for v in rng.integers(1, 4, size=2))
        padding = ["valid", "same"][len(configs) % 2]
        height, width = (int(v) for v in rng.integers(4, 12, size=2))
        if padding == "valid" and (kh > height or kw > width):
            continue
        configs.append(dict(batch=int(rng.integers(1, 4)), height=height, width=width,
                            c_in=int(rng.integers(1, 5)), c_out=int(rng.integers(1, 6)),
                            kernel=(kh, kw), strides=strides, padding=padding,
                            use_bias=bool(rng.random() < 0.8), seed=len(configs)))
    return configs


def _pool_configs(count=30, seed=7):
    rng = np.random.default_rng(seed)
    configs = []
    while len(configs) < count:
        pool = tuple(int(v) for v in rng.integers(1, 5, size=2))
        if rng.random() < 0.5:
            pool = pool[0]
        choice = rng.integers(0, 3)
        strides = (None if choice == 0 else int(rng.integers(1, 4)) if choice == 1
                   else tuple(int(v) for v in rng.integers(1, 4, size=2)))
        padding = ["valid", "same"][len(configs) % 2]
        height, width = (int(v) for v in rng.integers(3, 11, size=2))
        ph, pw = (pool, pool) if isinstance(pool, int) else pool
        if padding == "valid" and (ph > height or pw > width):
            continue
        configs.append(dict(batch=int(rng.integers(1, 4)), height=height, width=width,
                            channels=int(rng.integers(1, 4)), pool=pool, strides=strides,
                            padding=padding, seed=len(configs)))
    return configs


def _config_id(config):
    return "-".join(f"{key}={value}" for key, value in config.items() if key != "seed").replace(
        " ", "")


CONV_CONFIGS = _conv_configs()
POOL_CONFIGS = _pool_configs()


def _keras_conv(config, rng):
    layer = keras.layers.Conv2D(config["c_out"], config["kernel"], strides=config["strides"],
                                padding=config["padding"], use_bias=config["use_bias"],
                                dtype="float64")
    layer.build((None, config["height"], config["width"], config["c_in"]))
    weights = [rng.normal(size=config["kernel"] + (config["c_in"], config["c_out"]))]
    if config["use_bias"]:
        weights.append(rng.normal(size=config["c_out"]))
    layer.set_weights(weights)
    return layer


def _keras_output_and_gradients(layer, x, rng):
    """The layer's output on x, a random upstream gradient G, and the GradientTape
    gradients of sum(output * G) with respect to x and the layer's weights."""
    import tensorflow as tf

    x_tf = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        expected = layer(x_tf)
        grad_output = rng.normal(size=tuple(expected.shape))
        loss = tf.reduce_sum(expected * grad_output)
    return expected, grad_output, tape.gradient(loss, [x_tf, *layer.trainable_variables])


# --- convolution ---------------------------------------------------------------


@pytest.mark.parametrize("config", CONV_CONFIGS, ids=_config_id)
def test_conv2d_and_its_gradients_match_keras(config):
    rng = np.random.default_rng(config["seed"])
    layer = _keras_conv(config, rng)
    x = rng.normal(size=(config["batch"], config["height"], config["width"], config["c_in"]))
    weights = layer.get_weights()
    kernel, bias = weights[0], (weights[1] if config["use_bias"] else None)
    args = dict(strides=config["strides"], padding=config["padding"])

    expected, grad_output, tape_grads = _keras_output_and_gradients(layer, x, rng)

    mine = scratch.conv2d(x, kernel, bias, **args)
    assert mine.shape == tuple(expected.shape)
    np.testing.assert_allclose(mine, expected.numpy(), atol=ATOL)
    np.testing.assert_allclose(scratch.conv2d_naive(x, kernel, bias, **args), expected.numpy(),
                               atol=ATOL)

    grad_x, grad_kernel, grad_bias = scratch.conv2d_backward(x, kernel, grad_output, **args)
    np.testing.assert_allclose(grad_x, tape_grads[0].numpy(), atol=ATOL)
    np.testing.assert_allclose(grad_kernel, tape_grads[1].numpy(), atol=ATOL)
    if config["use_bias"]:
        np.testing.assert_allclose(grad_bias, tape_grads[2].numpy(), atol=ATOL)


@pytest.mark.parametrize(("strides", "padding"), [(1, "valid"), (2, "same"), ((1, 3), "same")])
def test_conv2d_backward_matches_numerical_gradient(strides, padding):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 6, 2))
    kernel = rng.normal(size=(3, 2, 2, 3))
    grad_output = rng.normal(size=scratch.conv2d(x, kernel, strides=strides,
                                                 padding=padding).shape)

    def loss_of_x(x_):
        return np.sum(scratch.conv2d(x_, kernel, strides=strides, padding=padding) * grad_output)

    def loss_of_kernel(kernel_):
        return np.sum(scratch.conv2d(x, kernel_, strides=strides, padding=padding) * grad_output)

    grad_x, grad_kernel, _ = scratch.conv2d_backward(x, kernel, grad_output, strides, padding)
    np.testing.assert_allclose(grad_x, scratch.numerical_gradient(loss_of_x, x), atol=1e-6)
    np.testing.assert_allclose(grad_kernel, scratch.numerical_gradient(loss_of_kernel, kernel),
                               atol=1e-6)


def test_conv2d_float32_stays_float32_and_matches_keras():
    rng = np.random.default_rng(0)
    x = rng.random((4, 16, 16, 3), dtype=np.float32)
    layer = keras.layers.Conv2D(8, 3, padding="same")  # float32, Keras' default
    expected = layer(x).numpy()
    kernel, bias = layer.get_weights()
    mine = scratch.conv2d(x, kernel, bias, padding="same")
    assert mine.dtype == np.float32
    assert scratch.im2col(x, 3, padding="same").dtype == np.float32
    # float32 has ~7 significant digits and each output sums 27 products of size ~1,
    # so summation-order differences reach ~1e-6; 1e-5 leaves a margin.
    np.testing.assert_allclose(mine, expected, atol=1e-5)


def test_im2col_patch_matrix_layout():
    x = np.arange(2 * 4 * 5 * 3, dtype=np.float64).reshape(2, 4, 5, 3)
    patches = scratch.im2col(x, (2, 3), strides=(2, 1))
    assert patches.shape == (2, 2, 3, 2 * 3 * 3)
    # row (n=1, i=1, j=2) is the window x[1, 2:4, 2:5, :] flattened as (kh, kw, C)
    np.testing.assert_array_equal(patches[1, 1, 2], x[1, 2:4, 2:5, :].reshape(-1))


def test_same_padding_matches_tensorflow():
    """Read TF's padding off its output: output channel u of a one-hot kernel reads window
    cell u, which is zero exactly where the window lies on padding (x = 1..size > 0)."""
    for size in range(1, 11):
        for kernel_size in range(1, 6):
            for stride in range(1, 4):
                x = tf.reshape(tf.range(1, size + 1, dtype=tf.float64), (1, size, 1, 1))
                one_hot = np.eye(kernel_size).reshape(kernel_size, 1, 1, kernel_size)
                out = tf.nn.conv2d(x, one_hot, stride, "SAME").numpy()[0, :, 0, :]
                pad_top = int(np.flatnonzero(out[0])[0])
                pad_bottom = kernel_size - 1 - int(np.flatnonzero(out[-1])[-1])
                case = (size, kernel_size, stride)
                assert scratch.same_padding(*case) == (pad_top, pad_bottom), case
                assert scratch.conv_output_size(size, kernel_size, stride, "same") == len(out)
                if kernel_size <= size:
                    valid = tf.nn.conv2d(x, one_hot, stride, "VALID").shape[1]
                    assert scratch.conv_output_size(size, kernel_size, stride) == valid, case


def test_same_padding_is_asymmetric_with_stride_two():
    assert scratch.same_padding(6, 3, 2) == (0, 1)  # the extra cell goes at the end
    assert scratch.same_padding(7, 4, 1) == (1, 2)
    assert scratch.same_padding(5, 3, 1) == (1, 1)


@pytest.mark.parametrize(("layers", "expected"), [
    ([(3, 1)], 3), ([(3, 1), (3, 1)], 5), ([(3, 1), (2, 2), (3, 1)], 8),
    ([(5, 2), (3, 2), (3, 1)], 17),
])
def test_receptive_field_matches_gradient_support(layers, expected):
    assert scratch.receptive_field(layers) == expected
    size = 40
    x = tf.ones((1, size, 1, 1), dtype=tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = x
        for kernel_size, stride in layers:
            y = tf.nn.conv2d(y, tf.ones((kernel_size, 1, 1, 1), tf.float64), stride, "VALID")
        centre = y[0, y.shape[1] // 2, 0, 0]
    support = np.flatnonzero(tape.gradient(centre, x).numpy().ravel())
    assert support[-1] - support[0] + 1 == expected


def test_naive_and_im2col_agree_on_a_worked_example():
    x = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1)
    kernel = np.array([[1.0, 0.0], [0.0, -1.0]]).reshape(2, 2, 1, 1)
    out = scratch.conv2d(x, kernel)
    assert out.shape == (1, 3, 3, 1)
    np.testing.assert_array_equal(out, np.full((1, 3, 3, 1), -5.0))  # x[i,j] - x[i+1,j+1]
    np.testing.assert_array_equal(scratch.conv2d_naive(x, kernel), out)


# --- pooling ---------------------------------------------------------------------


@pytest.mark.parametrize("config", POOL_CONFIGS, ids=_config_id)
def test_pooling_matches_keras(config):
    rng = np.random.default_rng(100 + config["seed"])
    x = rng.normal(size=(config["batch"], config["height"], config["width"],
                         config["channels"]))
    args = dict(pool_size=config["pool"], strides=config["strides"], padding=config["padding"])
    for keras_class, mine in [(keras.layers.MaxPooling2D, scratch.max_pool2d),
                              (keras.layers.AveragePooling2D, scratch.avg_pool2d)]:
        expected = keras_class(**args, dtype="float64")(x).numpy()
        result = mine(x, **args)
        assert result.shape == expected.shape, keras_class.__name__
        np.testing.assert_allclose(result, expected, atol=ATOL, err_msg=keras_class.__name__)


def test_same_pooling_ignores_padded_cells():
    x = -np.ones((1, 3, 3, 1))  # all negative: a zero pad would win the max
    assert scratch.max_pool2d(x, 2, padding="same").max() == -1
    np.testing.assert_array_equal(scratch.avg_pool2d(x, 2, padding="same"), -np.ones((1, 2, 2, 1)))


def test_pooling_keeps_float32():
    x = np.ones((1, 4, 4, 2), dtype=np.float32)
    assert scratch.max_pool2d(x).dtype == np.float32
    assert scratch.avg_pool2d(x, padding="same").dtype == np.float32


# --- dense and activations ---------------------------------------------------------


DENSE_CONFIGS = [
    dict(shape=shape, units=units, activation=activation, use_bias=use_bias)
    for shape, units in [((5, 4), 3), ((2, 3, 6), 5), ((1, 1), 2)]
    for activation in [None, "sigmoid", "relu", "tanh", "softmax"]
    for use_bias in [True, False]
]


@pytest.mark.parametrize("config", DENSE_CONFIGS, ids=_config_id)
def test_dense_and_its_gradients_match_keras(config):
    rng = np.random.default_rng(len(config["shape"]) * 10 + config["units"])
    x = rng.normal(size=config["shape"])
    in_features = config["shape"][-1]
    layer = keras.layers.Dense(config["units"], activation=config["activation"],
                               use_bias=config["use_bias"], dtype="float64")
    layer.build((None, in_features))
    weights = [rng.normal(size=(in_features, config["units"]))]
    if config["use_bias"]:
        weights.append(rng.normal(size=config["units"]))
    layer.set_weights(weights)
    kernel, bias = weights[0], (weights[1] if config["use_bias"] else None)

    expected, grad_output, tape_grads = _keras_output_and_gradients(layer, x, rng)

    np.testing.assert_allclose(scratch.dense(x, kernel, bias, config["activation"]),
                               expected.numpy(), atol=ATOL)
    grads = scratch.dense_backward(x, kernel, grad_output, bias, config["activation"])
    # zip stops before grad_bias when the layer has no bias
    for mine, theirs in zip(grads, tape_grads, strict=False):
        np.testing.assert_allclose(mine, theirs.numpy(), atol=ATOL)


@pytest.mark.parametrize("activation", [None, "sigmoid", "relu", "tanh", "softmax"])
def test_dense_backward_matches_numerical_gradient(activation):
    rng = np.random.default_rng(5)
    x, kernel, bias = rng.normal(size=(3, 4)), rng.normal(size=(4, 5)), rng.normal(size=5)
    grad_output = rng.normal(size=(3, 5))
    grad_x, grad_kernel, grad_bias = scratch.dense_backward(x, kernel, grad_output, bias,
                                                            activation)
    checks = [
        (grad_x, lambda v: np.sum(scratch.dense(v, kernel, bias, activation) * grad_output), x),
        (grad_kernel, lambda v: np.sum(scratch.dense(x, v, bias, activation) * grad_output),
         kernel),
        (grad_bias, lambda v: np.sum(scratch.dense(x, kernel, v, activation) * grad_output),
         bias),
    ]
    for analytic, loss, at in checks:
        numeric = scratch.numerical_gradient(loss, at)
        relative = np.linalg.norm(analytic - numeric) / np.linalg.norm(analytic + numeric)
        assert relative < 1e-7


def test_activations_match_keras():
    z = np.linspace(-30, 30, 60).reshape(3, 20)
    for name in ["sigmoid", "relu", "tanh", "softmax"]:
        expected = getattr(keras.activations, name)(tf.constant(z)).numpy()
        np.testing.assert_allclose(scratch.ACTIVATIONS[name](z), expected, atol=1e-12,
                                   err_msg=name)


def test_sigmoid_and_softmax_do_not_overflow():
    with np.errstate(over="raise", invalid="raise"):
        np.testing.assert_allclose(scratch.sigmoid(np.array([-1000.0, 0.0, 1000.0])),
                                   [0.0, 0.5, 1.0])
        np.testing.assert_allclose(scratch.softmax(np.array([[1000.0, 1000.0]])), [[0.5, 0.5]])


def test_numerical_gradient_of_a_known_function():
    x = np.array([[1.0, -2.0], [0.5, 3.0]], dtype=np.float32)
    grad = scratch.numerical_gradient(lambda v: np.sum(v ** 3), x)
    assert grad.shape == x.shape and grad.dtype == np.float64
    np.testing.assert_allclose(grad, 3 * x.astype(np.float64) ** 2, rtol=1e-8)
    assert x[0, 0] == 1.0  # the input is not modified


# --- bad input ------------------------------------------------------------------------


X = np.zeros((2, 8, 8, 3))
KERNEL = np.zeros((3, 3, 3, 4))


@pytest.mark.parametrize(("call", "shapes"), [
    (lambda: scratch.conv2d(X, np.zeros((3, 3, 5, 4))), [X.shape, (3, 3, 5, 4)]),
    (lambda: scratch.conv2d_naive(X, np.zeros((3, 3, 5, 4))), [X.shape, (3, 3, 5, 4)]),
    (lambda: scratch.conv2d(np.zeros((8, 8, 3)), KERNEL), [(8, 8, 3), KERNEL.shape]),
    (lambda: scratch.conv2d(X, np.zeros((3, 3, 3))), [X.shape, (3, 3, 3)]),
    (lambda: scratch.conv2d(X, KERNEL, np.zeros(5)), [KERNEL.shape, (5,)]),
    (lambda: scratch.conv2d(np.zeros((1, 2, 2, 3)), KERNEL), [(1, 2, 2, 3), KERNEL.shape]),
    (lambda: scratch.conv2d_backward(X, KERNEL, np.zeros((2, 8, 8, 4))),
     [(2, 8, 8, 4), (2, 6, 6, 4)]),
    (lambda: scratch.dense(np.zeros((2, 3)), np.zeros((4, 5))), [(2, 3), (4, 5)]),
    (lambda: scratch.dense(np.zeros((2, 4)), np.zeros((4, 5)), np.zeros(3)), [(4, 5), (3,)]),
    (lambda: scratch.dense(np.zeros((2, 4)), np.zeros(4)), [(2, 4), (4,)]),
    (lambda: scratch.dense_backward(np.zeros((2, 4)), np.zeros((4, 5)), np.zeros((2, 4))),
     [(2, 4), (2, 5)]),
    (lambda: scratch.max_pool2d(np.zeros((1, 2, 2, 1)), 3), [(1, 2, 2, 1), (3, 3)]),
    (lambda: scratch.avg_pool2d(np.zeros((1, 5, 2, 1)), (2, 3)), [(1, 5, 2, 1), (2, 3)]),
    (lambda: scratch.max_pool2d(np.zeros((5, 5, 1)), 2), [(5, 5, 1), (2, 2)]),
])
def test_shape_errors_name_both_shapes(call, shapes):
    with pytest.raises(ValueError, match=_shapes_in_message(*shapes)):
        call()


@pytest.mark.parametrize(("call", "message"), [
    (lambda: scratch.conv2d(X, KERNEL, padding="full"), "padding must be 'valid' or 'same'"),
    (lambda: scratch.max_pool2d(X, padding="causal"), "padding must be 'valid' or 'same'"),
    (lambda: scratch.dense(np.zeros((2, 4)), np.zeros((4, 5)), activation="swish"),
     "unknown activation 'swish'"),
    (lambda: scratch.conv2d(X, KERNEL, strides=0), r"strides must be positive, got 0"),
    (lambda: scratch.conv2d(X, KERNEL, strides=(1, -2)), r"strides must be positive"),
    (lambda: scratch.conv2d_naive(X, KERNEL, strides=(0, 1)), r"strides must be positive"),
    (lambda: scratch.max_pool2d(X, pool_size=0), "pool_size must be positive"),
    (lambda: scratch.avg_pool2d(X, strides=(2, 0)), "strides must be positive"),
    (lambda: scratch.numerical_gradient(lambda v: v * 2, np.ones(3)), "f must return a scalar"),
    (lambda: scratch.same_padding(5, 0, 1), "kernel_size must be positive, got 0"),
    (lambda: scratch.conv_output_size(5, 3, -1, "same"), "stride must be positive, got -1"),
    (lambda: scratch.conv_output_size(2, 3), "kernel_size 3 is larger than size 2"),
    (lambda: scratch.receptive_field([(3, 1), (3, 0)]), "stride must be positive, got 0"),
])
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(("call", "message"), [
    (lambda: scratch.conv2d("image", KERNEL), "x must be an array-like"),
    (lambda: scratch.conv2d(X, None), "kernel must be an array-like"),
    (lambda: scratch.dense({"a": 1}, np.zeros((4, 5))), "x must be an array-like"),
    (lambda: scratch.max_pool2d([[1, 2], [3]]), "x must be an array-like"),
    (lambda: scratch.conv2d(X, KERNEL, strides=1.5), "strides must be an int or a pair"),
    (lambda: scratch.conv2d(X, KERNEL, strides=(1, 2, 3)), "strides must be an int or a pair"),
    (lambda: scratch.max_pool2d(X, pool_size="2"), "pool_size must be an int or a pair"),
    (lambda: scratch.dense(np.zeros((2, 4)), np.zeros((4, 5)), activation=np.tanh),
     "activation must be None or a name"),
    (lambda: scratch.conv2d(np.array(["a"] * 4).reshape(1, 2, 2, 1), KERNEL),
     "x must hold real numbers"),
    (lambda: scratch.numerical_gradient("f", np.ones(3)), "f must be a function"),
    (lambda: scratch.same_padding(5.0, 3, 1), "size must be an int"),
    (lambda: scratch.receptive_field([3, 3]), r"each layer must be a pair \(kernel_size, stride\)"),
])
def test_wrong_types_raise_type_error(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_conv_output_size_defaults_to_stride_1_valid():
    import keras
    layer = keras.layers.Conv2D(1, 3)
    assert layer.compute_output_shape((None, 28, 28, 1))[1] == 26  # Keras' defaults
    assert scratch.conv_output_size(28, 3) == 26 == scratch.conv_output_size(28, 3, 1, "valid")
