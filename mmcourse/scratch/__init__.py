"""NumPy implementations of the layers, proven equal to Keras (notebooks 02 and 03).

Weights use Keras layouts, so ``layer.get_weights()`` can be passed straight in. The pieces
of the real model families (notebook 11) and LoRA's dense layer (notebook 12) live in
``scratch_realfamily`` and are re-exported here.
"""

from __future__ import annotations

import numpy as np

from mmcourse.scratch.realfamily import (  # noqa: F401  (re-exported, notebook 11)
    geglu,
    grouped_query_attention,
    lora_dense,
    prefix_lm_mask,
    rms_norm,
    rotary_embedding,
)

# --- dense, convolution and pooling (notebook 02) ---------------------------


def _check_array(name: str, x, ndim=None, *, layout: str = "", context: str = "") -> np.ndarray:
    """``x`` as a floating NumPy array, or a clear error that names ``name``.

    Accepts NumPy arrays, nested lists, tf.Tensors and Keras variables. Floating
    dtypes are kept (float32 stays float32); integers and booleans become float64.
    ``ndim`` is an int or a tuple of allowed ranks; ``layout`` (e.g. "(N, H, W, C)")
    and ``context`` (e.g. the other argument's shape) are added to the message.
    Introduced in notebook 02 (shared with notebook 03).
    """
    if x is None or isinstance(x, (str, bytes, dict, set)) or callable(x):
        raise TypeError(f"{name} must be an array-like of numbers, got {type(x).__name__}")
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):  # tf.Tensor, Keras variable
        x = x.numpy()
    try:
        array = np.asarray(x)
    except (TypeError, ValueError) as error:  # ragged lists and the like
        raise TypeError(f"{name} must be an array-like of numbers ({error})") from None
    if array.dtype.kind in "biu":
        array = array.astype(np.float64)
    elif array.dtype.kind != "f":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype} "
                        f"({type(x).__name__})")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if array.ndim not in allowed:
            ranks = " or ".join(f"{n}-D" for n in allowed)
            message = f"{name} must be {ranks}"
            if layout:
                message += f" {layout}"
            message += f", got shape {array.shape}"
            if context:
                message += f"; {context}"
            raise ValueError(message)
    return array


def relu(z):
    """max(z, 0), element-wise. Introduced in notebook 02."""
    return np.maximum(z, 0)


def sigmoid(z):
    """1 / (1 + exp(-z)), computed without overflow. Introduced in notebook 02."""
    z = np.asarray(z)
    out = np.empty_like(z, dtype=np.result_type(z, np.float32))
    positive = z >= 0
    out[positive] = 1 / (1 + np.exp(-z[positive]))
    exp_z = np.exp(z[~positive])
    out[~positive] = exp_z / (1 + exp_z)
    return out


def tanh(z):
    """The hyperbolic tangent, element-wise. Introduced in notebook 02."""
    return np.tanh(z)


def softmax(z, axis: int = -1):
    """exp(z) / sum(exp(z)) along ``axis``, shifted by the max for stability.
    Introduced in notebook 02."""
    z = np.asarray(z)
    shifted = np.exp(z - z.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def _identity(z):
    return z


ACTIVATIONS = {"sigmoid": sigmoid, "relu": relu, "tanh": tanh, "softmax": softmax}


def _activation(name):
    """The activation function called ``name`` (None or "linear": identity).

    Unknown names get a ValueError listing the choices. Introduced in notebook 02
    (shared with notebook 03).
    """
    if name is None or name == "linear":
        return _identity
    if not isinstance(name, str):
        raise TypeError(f"activation must be None or a name such as 'relu', got "
                        f"{type(name).__name__}")
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose None or one of "
                         f"{sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def _activation_backward(name, output, grad_output):
    """dLoss/dz for ``output = activation(z)``, given dLoss/doutput.

    Written in terms of the output (sigmoid' = y(1-y), tanh' = 1-y², relu' = [y>0],
    softmax's Jacobian-vector product along the last axis). Introduced in notebook 02
    (shared with notebook 03).
    """
    _activation(name)  # validates the name
    if name is None or name == "linear":
        return grad_output
    if name == "relu":
        return grad_output * (output > 0)
    if name == "sigmoid":
        return grad_output * output * (1 - output)
    if name == "tanh":
        return grad_output * (1 - output * output)
    # softmax: J^T g = y * (g - <g, y>)
    return output * (grad_output - np.sum(grad_output * output, axis=-1, keepdims=True))


# Dense: f(x) = sigma(x W + b), Keras layout kernel (in_features, units).


def _check_bias(bias, kernel, outputs_name: str):
    """``bias`` as an array of shape (kernel.shape[-1],), or None; a clear error otherwise."""
    if bias is None:
        return None
    bias = _check_array("bias", bias)
    outputs = kernel.shape[-1]
    if bias.shape != (outputs,):
        raise ValueError(f"bias must have shape ({outputs},) to match kernel {kernel.shape} "
                         f"({outputs_name}={outputs}), got bias {bias.shape}")
    return bias


def _check_dense(x, kernel, bias):
    x = _check_array("x", x, layout="(..., in_features)")
    kernel = _check_array("kernel", kernel, 2, layout="(in_features, units)",
                          context=f"x has shape {x.shape}")
    if x.ndim == 0:
        raise ValueError(f"x must have at least 1 dimension (..., in_features), got shape "
                         f"{x.shape}; kernel {kernel.shape}")
    if x.shape[-1] != kernel.shape[0]:
        raise ValueError(f"kernel expects in_features={kernel.shape[0]} but x has "
                         f"{x.shape[-1]} features: x {x.shape}, kernel {kernel.shape}")
    return x, kernel, _check_bias(bias, kernel, "units")


def dense(x, kernel, bias=None, activation=None):
    """The article's f(x) = sigma(W x + b), as Keras computes it: ``activation(x @ kernel + bias)``.

    ``x`` is (..., in_features), ``kernel`` is (in_features, units), ``bias`` is (units,);
    ``activation`` is None or "sigmoid", "relu", "tanh", "softmax". Pass
    ``keras.layers.Dense(...).get_weights()`` straight in. Introduced in notebook 02.
    """
    act = _activation(activation)
    x, kernel, bias = _check_dense(x, kernel, bias)
    z = x @ kernel
    if bias is not None:
        z = z + bias.astype(z.dtype, copy=False)
    return act(z)


def dense_backward(x, kernel, grad_output, bias=None, activation=None):
    """Gradients of a loss through ``dense``: returns ``(grad_x, grad_kernel, grad_bias)``.

    ``grad_output`` is dLoss/d(dense output), shaped like the output. With an
    activation the forward pass is recomputed to get sigma'(z). ``grad_bias`` is
    returned even when ``bias`` is None (it is the gradient a bias would get).
    Introduced in notebook 02.
    """
    _activation(activation)
    x, kernel, bias = _check_dense(x, kernel, bias)
    grad_output = _check_array("grad_output", grad_output)
    expected = x.shape[:-1] + (kernel.shape[1],)
    if grad_output.shape != expected:
        raise ValueError(f"grad_output must have the output's shape {expected}, got "
                         f"{grad_output.shape}: x {x.shape}, kernel {kernel.shape}")
    output = dense(x, kernel, bias, activation)
    grad_z = _activation_backward(activation, output, grad_output)
    grad_x = grad_z @ kernel.T
    flat_x = x.reshape(-1, kernel.shape[0])
    flat_grad = grad_z.reshape(-1, kernel.shape[1])
    grad_kernel = flat_x.T @ flat_grad
    grad_bias = flat_grad.sum(axis=0)
    return grad_x, grad_kernel, grad_bias


# Convolution and pooling: x (N, H, W, C), kernel (kh, kw, C_in, C_out), as Keras.


def _pair(name: str, value) -> tuple[int, int]:
    """An int or a pair of ints as a pair of positive ints (strides, pool sizes)."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                  for v in items):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(items) < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return int(items[0]), int(items[1])


def _check_padding(padding) -> str:
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower()


def _check_sizes(**sizes) -> None:
    """Each named size must be a positive int (TypeError / ValueError naming it)."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}")


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """(pad_before, pad_after) that TensorFlow/Keras add for padding="same".

    The output has ceil(size / stride) positions; the total padding is
    max((out - 1) * stride + kernel_size - size, 0), split with the extra cell at the
    end (bottom/right). Introduced in notebook 02.
    """
    _check_sizes(size=size, kernel_size=kernel_size, stride=stride)
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


def conv_output_size(size: int, kernel_size: int, stride: int = 1,
                     padding: str = "valid") -> int:
    """Output length of a convolution or pooling along one axis, as in Keras.

    valid: floor((size - kernel_size) / stride) + 1;  same: ceil(size / stride).
    Introduced in notebook 02.
    """
    _check_sizes(size=size, kernel_size=kernel_size, stride=stride)
    if _check_padding(padding) == "same":
        return -(-size // stride)
    if kernel_size > size:
        raise ValueError(f"kernel_size {kernel_size} is larger than size {size} with "
                         f"padding='valid'")
    return (size - kernel_size) // stride + 1


def receptive_field(layers) -> int:
    """Receptive field (in input pixels) of a stack of (kernel_size, stride) layers.

    r = 1 + sum_l (k_l - 1) * prod_{i<l} s_i. Introduced in notebook 02.
    """
    field, jump = 1, 1
    for layer in layers:
        if not isinstance(layer, (tuple, list)) or len(layer) != 2:
            raise TypeError(f"each layer must be a pair (kernel_size, stride), got {layer!r}")
        kernel_size, stride = layer
        _check_sizes(kernel_size=kernel_size, stride=stride)
        field += (kernel_size - 1) * jump
        jump *= stride
    return field


def _window_geometry(x_shape, window, strides, padding, described):
    """Output size and padding of a sliding window; errors name both shapes."""
    (kh, kw), (sh, sw) = window, strides
    _, height, width, _ = x_shape
    if padding == "valid" and (kh > height or kw > width):
        raise ValueError(f"{described} is larger than x {tuple(x_shape)} (H={height}, "
                         f"W={width}) with padding='valid'; use padding='same' or a larger input")
    out_h = conv_output_size(height, kh, sh, padding)
    out_w = conv_output_size(width, kw, sw, padding)
    if padding == "same":
        pads = (same_padding(height, kh, sh), same_padding(width, kw, sw))
    else:
        pads = ((0, 0), (0, 0))
    return (out_h, out_w), pads


def _pad(x, pads, value=0.0):
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _check_conv(x, kernel, bias, strides, padding):
    padding = _check_padding(padding)
    strides = _pair("strides", strides)
    x = _check_array("x", x)
    kernel = _check_array("kernel", kernel)
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, H, W, C_in), got x {x.shape}; kernel {kernel.shape}")
    if kernel.ndim != 4:
        raise ValueError(f"kernel must be 4-D (kh, kw, C_in, C_out), got kernel {kernel.shape}; "
                         f"x {x.shape}")
    if kernel.shape[2] != x.shape[3]:
        raise ValueError(f"kernel has C_in={kernel.shape[2]} but x has {x.shape[3]} channels: "
                         f"x {x.shape}, kernel {kernel.shape}")
    bias = _check_bias(bias, kernel, "C_out")
    geometry = _window_geometry(x.shape, kernel.shape[:2], strides, padding,
                                f"kernel {kernel.shape}")
    return x, kernel, bias, strides, geometry


def im2col(x, kernel_size, strides=1, padding="valid"):
    """The patch matrix of a convolution: shape (N, out_h, out_w, kh * kw * C).

    Row (n, i, j) holds the input window under output pixel (i, j), flattened in the
    order (kh, kw, C), so ``im2col(x, ...) @ kernel.reshape(-1, C_out)`` is the
    convolution. (It is a transposed view of the column matrix that ``conv2d`` builds.)
    Introduced in notebook 02.
    """
    kh, kw = _pair("kernel_size", kernel_size)
    x = _check_array("x", x, 4, layout="(N, H, W, C)", context=f"kernel_size {(kh, kw)}")
    strides = _pair("strides", strides)
    padding = _check_padding(padding)
    (out_h, out_w), pads = _window_geometry(x.shape, (kh, kw), strides, padding,
                                            f"kernel_size {(kh, kw)}")
    columns = _columns(x, pads, kh, kw, strides, out_h, out_w)
    return columns.T.reshape(x.shape[0], out_h, out_w, kh * kw * x.shape[3])


def _columns(x, pads, kh, kw, strides, out_h, out_w):
    """The column matrix (kh*kw*C, N*out_h*out_w): row (u, v, c) holds cell (u, v) of
    channel c of every window.

    Built channels-first, so each of the kh*kw strided copies moves whole image rows
    (not 3-float pixels); never a loop over pixels.
    """
    (top, bottom), (left, right) = pads
    (sh, sw), (batch, height, width, channels) = strides, x.shape
    padded = np.zeros((channels, batch, height + top + bottom, width + left + right), x.dtype)
    padded[:, :, top:top + height, left:left + width] = x.transpose(3, 0, 1, 2)
    columns = np.empty((kh, kw, channels, batch, out_h, out_w), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            columns[u, v] = padded[:, :, u:u + sh * (out_h - 1) + 1:sh,
                                   v:v + sw * (out_w - 1) + 1:sw]
    return columns.reshape(kh * kw * channels, batch * out_h * out_w)


def conv2d(x, kernel, bias=None, strides=1, padding="valid"):
    """2-D convolution (cross-correlation) as Keras ``Conv2D`` computes it, by im2col.

    ``x`` (N, H, W, C_in), ``kernel`` (kh, kw, C_in, C_out), ``bias`` (C_out,);
    ``strides`` an int or a pair; ``padding`` "valid" or "same" (TensorFlow's
    asymmetric split, see ``same_padding``). One matrix product of the patch
    matrix (N*out_h*out_w, kh*kw*C_in) with the kernel (kh*kw*C_in, C_out);
    float32 stays float32. Introduced in notebook 02.
    """
    x, kernel, bias, strides, ((out_h, out_w), pads) = _check_conv(x, kernel, bias, strides,
                                                                   padding)
    kh, kw, c_in, c_out = kernel.shape
    dtype = np.result_type(x, kernel)
    columns = _columns(x.astype(dtype, copy=False), pads, kh, kw, strides, out_h, out_w)
    out = columns.T @ kernel.astype(dtype, copy=False).reshape(-1, c_out)  # BLAS, no copy
    if bias is not None:
        out += bias.astype(dtype, copy=False)
    return out.reshape(x.shape[0], out_h, out_w, c_out)


def conv2d_naive(x, kernel, bias=None, strides=1, padding="valid"):
    """The same convolution with explicit loops, straight from the formula (for teaching).

    out[n, i, j, o] = b[o] + sum_{u, v, c} x_pad[n, i*sh + u, j*sw + v, c] * kernel[u, v, c, o].
    Very slow: one Python iteration per output number. Introduced in notebook 02.
    """
    x, kernel, bias, (sh, sw), ((out_h, out_w), pads) = _check_conv(x, kernel, bias, strides,
                                                                    padding)
    kh, kw, _, c_out = kernel.shape
    padded = _pad(x, pads)
    out = np.zeros((x.shape[0], out_h, out_w, c_out), dtype=np.result_type(x, kernel))
    for n in range(x.shape[0]):
        for i in range(out_h):
            for j in range(out_w):
                window = padded[n, i * sh:i * sh + kh, j * sw:j * sw + kw, :]
                for o in range(c_out):
                    out[n, i, j, o] = np.sum(window * kernel[:, :, :, o])
                    if bias is not None:
                        out[n, i, j, o] += bias[o]
    return out


def conv2d_backward(x, kernel, grad_output, strides=1, padding="valid"):
    """Gradients through ``conv2d``: returns ``(grad_x, grad_kernel, grad_bias)``.

    grad_kernel = columns · grad_output (one matmul); grad_x scatters
    kernel · grad_outputᵀ back onto the input windows (col2im, one strided add per
    kernel offset) and drops the padding; grad_bias sums grad_output over N, H, W.
    Introduced in notebook 02.
    """
    x, kernel, _, (sh, sw), ((out_h, out_w), pads) = _check_conv(x, kernel, None, strides,
                                                                 padding)
    kh, kw, c_in, c_out = kernel.shape
    grad_output = _check_array("grad_output", grad_output)
    expected = (x.shape[0], out_h, out_w, c_out)
    if grad_output.shape != expected:
        raise ValueError(f"grad_output must have the output's shape {expected}, got "
                         f"{grad_output.shape}: x {x.shape}, kernel {kernel.shape}")
    dtype = np.result_type(x, kernel, grad_output)
    (batch, height, width, _), ((top, bottom), (left, right)) = x.shape, pads
    flat_grad = grad_output.astype(dtype, copy=False).reshape(-1, c_out)
    columns = _columns(x.astype(dtype, copy=False), pads, kh, kw, (sh, sw), out_h, out_w)
    grad_kernel = (columns @ flat_grad).reshape(kh, kw, c_in, c_out)
    grad_bias = flat_grad.sum(axis=0)
    grad_columns = kernel.astype(dtype, copy=False).reshape(-1, c_out) @ flat_grad.T
    grad_columns = grad_columns.reshape(kh, kw, c_in, batch, out_h, out_w)
    # col2im: add each column's gradient back onto the pixels it was copied from
    grad_padded = np.zeros((c_in, batch, height + top + bottom, width + left + right), dtype)
    for u in range(kh):
        for v in range(kw):
            grad_padded[:, :, u:u + sh * (out_h - 1) + 1:sh,
                        v:v + sw * (out_w - 1) + 1:sw] += grad_columns[u, v]
    grad_x = grad_padded[:, :, top:top + height, left:left + width].transpose(1, 2, 3, 0)
    return np.ascontiguousarray(grad_x), grad_kernel, grad_bias


def _pool(x, pool_size, strides, padding, reduce):
    pool = _pair("pool_size", pool_size)
    strides = pool if strides is None else _pair("strides", strides)
    padding = _check_padding(padding)
    x = _check_array("x", x, 4, layout="(N, H, W, C)", context=f"pool_size {pool}")
    (out_h, out_w), pads = _window_geometry(x.shape, pool, strides, padding,
                                            f"pool_size {pool}")
    return reduce(x, pool, strides, pads, out_h, out_w)


def _windows(padded, pool, strides, out_h, out_w):
    """A strided view (N, out_h, out_w, C, ph, pw) of the pooling windows (no copy)."""
    view = np.lib.stride_tricks.sliding_window_view(padded, pool, axis=(1, 2))
    return view[:, ::strides[0], ::strides[1]][:, :out_h, :out_w]


def max_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """Max pooling as Keras ``MaxPooling2D``: x (N, H, W, C); strides default to pool_size.

    With padding="same" the padded cells never win (they are -inf).
    Introduced in notebook 02.
    """

    def reduce(x, pool, strides, pads, out_h, out_w):
        padded = _pad(x, pads, value=-np.inf)
        return _windows(padded, pool, strides, out_h, out_w).max(axis=(-2, -1))

    return _pool(x, pool_size, strides, padding, reduce)


def avg_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """Average pooling as Keras ``AveragePooling2D``: x (N, H, W, C); strides default to
    pool_size. With padding="same" each window averages only its real (unpadded) cells.
    Introduced in notebook 02.
    """

    def reduce(x, pool, strides, pads, out_h, out_w):
        sums = _windows(_pad(x, pads), pool, strides, out_h, out_w).sum(axis=(-2, -1))
        ones = np.ones((1,) + x.shape[1:3] + (1,), dtype=x.dtype)
        counts = _windows(_pad(ones, pads), pool, strides, out_h, out_w).sum(axis=(-2, -1))
        return sums / counts

    return _pool(x, pool_size, strides, padding, reduce)


def numerical_gradient(f, x, eps: float = 1e-6) -> np.ndarray:
    """dF/dx by central differences, (f(x + eps e_i) - f(x - eps e_i)) / (2 eps) per entry.

    ``f`` maps an array shaped like ``x`` to a scalar (e.g. a loss). Works in float64
    whatever the dtype of ``x``; returns a float64 array shaped like ``x``. Costs two
    calls of ``f`` per entry, so use small inputs. Introduced in notebook 02.
    """
    if not callable(f):
        raise TypeError(f"f must be a function of x returning a scalar, got {type(f).__name__}")
    x = _check_array("x", x).astype(np.float64)  # a copy, perturbed in place below
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    grad = np.zeros_like(x)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)
    for index in range(flat_x.size):
        original = flat_x[index]
        flat_x[index] = original + eps
        plus = f(x)
        flat_x[index] = original - eps
        minus = f(x)
        flat_x[index] = original
        if np.ndim(plus) != 0 or np.ndim(minus) != 0:
            raise ValueError(f"f must return a scalar, got shape {np.shape(plus)} for x of "
                             f"shape {x.shape}")
        flat_grad[index] = (float(plus) - float(minus)) / (2 * eps)
    return grad


def benchmark():
    """The ``conv`` benchmark: loops vs im2col vs ``tf.nn.conv2d`` (``python -m mmcourse bench
    conv``).

    One (32, 64, 64, 3) float32 batch, a 3x3x3x32 kernel, padding "same". The loop
    version would take many seconds on the full batch, so it runs once on one image and
    its time is scaled by 32. Target: im2col within 5x of TensorFlow. Introduced in
    notebook 02.
    """
    import tensorflow as tf

    from mmcourse.bench import BenchResult, Ratio, Timing, speedup, time_candidates

    rng = np.random.default_rng(0)
    batch = rng.random((32, 64, 64, 3), dtype=np.float32)
    kernel = rng.standard_normal((3, 3, 3, 32), dtype=np.float32)
    batch_tf, kernel_tf = tf.constant(batch), tf.constant(kernel)
    n_images = batch.shape[0]

    def tensorflow_conv():
        return tf.nn.conv2d(batch_tf, kernel_tf, strides=1, padding="SAME").numpy()

    timings = time_candidates({
        "im2col (conv2d)": lambda: conv2d(batch, kernel, padding="same"),
        "tensorflow (tf.nn.conv2d)": tensorflow_conv,
    }, repeats=7, warmup=2, items=n_images)
    (loop_one,) = time_candidates(
        {"loop": lambda: conv2d_naive(batch[:1], kernel, padding="same")},
        repeats=1, warmup=0, items=1)
    loop = Timing(f"loop (conv2d_naive) x{n_images}", loop_one.median_s * n_images,
                  loop_one.min_s * n_images, loop_one.repeats, 1 / loop_one.median_s)
    timings.append(loop)

    im2col_out = conv2d(batch, kernel, padding="same")
    tf_out = tensorflow_conv()
    loop_out = conv2d_naive(batch[:1], kernel, padding="same")
    ratio_tf = speedup(timings, "im2col (conv2d)", "tensorflow (tf.nn.conv2d)")
    return BenchResult(
        name="conv",
        description="3x3 convolution, 3 -> 32 channels: Python loops vs im2col (NumPy) vs "
                    "tf.nn.conv2d",
        timings=timings,
        ratios=[
            Ratio("im2col / tensorflow time", ratio_tf, target=5, higher_is_better=False),
            Ratio("loop / im2col time", speedup(timings, loop.name, "im2col (conv2d)")),
            Ratio("loop / tensorflow time",
                  speedup(timings, loop.name, "tensorflow (tf.nn.conv2d)")),
        ],
        facts={
            "input": f"x {batch.shape} float32, kernel {kernel.shape}, padding same",
            "loop timing": f"timed once on 1 image ({loop_one.median_s:.2f} s) and scaled "
                           f"x{n_images}",
            "output dtype (im2col)": str(im2col_out.dtype),
            "max |im2col - tensorflow|": f"{np.abs(im2col_out - tf_out).max():.2e}",
            "max |loop - im2col| (image 0)": f"{np.abs(loop_out - im2col_out[:1]).max():.2e}",
        },
    )


# --- recurrent layers (notebook 03) ------------------------------------------
# Keras layouts: kernel (features, G*units), recurrent_kernel (units, G*units),
# bias (G*units,), with G = 1 for SimpleRNN and G = 4 for LSTM in the gate order
# i, f, c, o (input, forget, candidate cell, output).

LSTM_GATES = ("i", "f", "c", "o")

_EMBEDDING_HINT = (
    "2-D input looks like token ids (batch, time): pass them through an Embedding layer "
    "first (keras.layers.Embedding, or embedding_table[token_ids] in NumPy) to get "
    "(batch, time, features) vectors"
)


def _shape_of(value) -> tuple:
    """The shape of an array-like (NumPy, list, tf.Tensor) for error messages."""
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else np.shape(value)


def _rnn_weights(kernel, recurrent_kernel, bias, features: int, gates: int, x_shape: tuple,
                 x_name: str = "x"):
    """Validate Keras-layout RNN weights against ``features``; return them and ``units``."""
    kernel = _check_array("kernel", kernel, 2, layout="(features, units)" if gates == 1
                          else f"(features, {gates}*units)", context=f"{x_name} {x_shape}")
    if kernel.shape[0] != features:
        raise ValueError(f"kernel has input dim {kernel.shape[0]} but {x_name} has {features} "
                         f"features: {x_name} {x_shape}, kernel {kernel.shape}")
    if kernel.shape[1] == 0 or kernel.shape[1] % gates:
        raise ValueError(f"kernel must have {gates}*units columns (gates i, f, c, o side by "
                         f"side), got kernel {kernel.shape}")
    units = kernel.shape[1] // gates
    wanted = "(units, units)" if gates == 1 else f"(units, {gates}*units)"
    recurrent_kernel = _check_array("recurrent_kernel", recurrent_kernel)
    if recurrent_kernel.shape != (units, gates * units):
        raise ValueError(f"recurrent_kernel must be {wanted} = {(units, gates * units)} to "
                         f"match kernel {kernel.shape}, got recurrent_kernel "
                         f"{recurrent_kernel.shape}")
    if bias is None:  # a layer built with use_bias=False
        bias = np.zeros(gates * units, dtype=kernel.dtype)
    bias = _check_array("bias", bias)
    if bias.shape != (gates * units,):
        length = "units" if gates == 1 else f"{gates}*units"
        raise ValueError(f"bias must have shape ({length},) = ({gates * units},) to match "
                         f"kernel {kernel.shape}, got bias {bias.shape}")
    return kernel, recurrent_kernel, bias, units


def _rnn_state(name: str, state, batch: int, units: int, x_name: str, x_shape: tuple,
               kernel_shape: tuple, dtype):
    """``state`` as a (batch, units) array of ``dtype``; zeros when None."""
    if state is None:
        return np.zeros((batch, units), dtype=dtype)
    state = _check_array(name, state)
    if state.shape != (batch, units):
        raise ValueError(f"{name} must have shape (batch, units) = {(batch, units)} for "
                         f"{x_name} {x_shape} and kernel {kernel_shape}, got {name} "
                         f"{state.shape}")
    return state.astype(dtype, copy=False)


def _rnn_mask(mask, x_shape: tuple):
    """``mask`` as a (batch, time) bool array (True = a real step), or None."""
    if mask is None:
        return None
    if hasattr(mask, "numpy") and not isinstance(mask, np.ndarray):
        mask = mask.numpy()
    mask = np.asarray(mask)
    if mask.shape != x_shape[:2]:
        raise ValueError(f"mask must have shape (batch, time) = {x_shape[:2]} for x {x_shape}, "
                         f"got mask {mask.shape}")
    if mask.dtype != bool:
        if mask.dtype.kind not in "biu" or not np.isin(mask, (0, 1)).all():
            raise TypeError(f"mask must hold booleans (True = real step, False = padding), "
                            f"got dtype {mask.dtype}")
        mask = mask.astype(bool)
    return mask


def _rnn_inputs(x, kernel, recurrent_kernel, bias, gates: int, states: dict, mask):
    """Validate everything a recurrent layer gets; return arrays in one float dtype."""
    hint = f". {_EMBEDDING_HINT}" if np.ndim(x) == 2 else ""
    x = _check_array("x", x, 3, layout="(batch, time, features)",
                     context=f"kernel {_shape_of(kernel)}{hint}")
    kernel, recurrent_kernel, bias, units = _rnn_weights(
        kernel, recurrent_kernel, bias, x.shape[2], gates, x.shape)
    dtype = np.result_type(x, kernel, recurrent_kernel, bias)
    x, kernel, recurrent_kernel, bias = (a.astype(dtype, copy=False)
                                         for a in (x, kernel, recurrent_kernel, bias))
    initial = {name: _rnn_state(name, value, x.shape[0], units, "x", x.shape, kernel.shape, dtype)
               for name, value in states.items()}
    return x, kernel, recurrent_kernel, bias, units, initial, _rnn_mask(mask, x.shape)


def _step_inputs(x_t, h_prev, kernel, recurrent_kernel, bias, gates: int):
    """Validate the arguments of one recurrent step (x_t is (batch, features))."""
    x_t = _check_array("x_t", x_t, 2, layout="(batch, features)",
                       context=f"kernel {_shape_of(kernel)}")
    kernel, recurrent_kernel, bias, units = _rnn_weights(
        kernel, recurrent_kernel, bias, x_t.shape[1], gates, x_t.shape, x_name="x_t")
    h_prev = _rnn_state("h_prev", h_prev, x_t.shape[0], units, "x_t", x_t.shape, kernel.shape,
                        np.result_type(x_t, kernel))
    return x_t, h_prev, kernel, recurrent_kernel, bias


def simple_rnn(x, kernel, recurrent_kernel, bias, h0=None, *, mask=None, activation="tanh"):
    """Every hidden state of ``keras.layers.SimpleRNN``: h_t = tanh(x_t W + h_{t-1} U + b).

    ``x`` is (batch, time, features); ``kernel`` W (features, units),
    ``recurrent_kernel`` U (units, units) and ``bias`` b (units,) as in
    ``layer.get_weights()`` (bias None for ``use_bias=False``). ``h0`` (batch, units)
    defaults to zeros. ``mask`` (batch, time), True for real steps: a padded step
    keeps the previous state, as Keras does. Returns (batch, time, units), the
    same as ``SimpleRNN(units, return_sequences=True)``. Introduced in notebook 03.

    Keras quirk: with an ``initial_state`` and a *leading* padded step, Keras
    outputs zeros there (its final state still equals ours); this function
    returns the carried state h0, which is what the recurrence means.
    """
    x, kernel, recurrent_kernel, bias, units, initial, mask = _rnn_inputs(
        x, kernel, recurrent_kernel, bias, 1, {"h0": h0}, mask)
    act = _activation(activation)
    inputs_projected = x @ kernel + bias  # all time steps at once: (batch, time, units)
    h = initial["h0"]
    hidden_states = np.empty(x.shape[:2] + (units,), dtype=x.dtype)
    for t in range(x.shape[1]):
        h_new = act(inputs_projected[:, t] + h @ recurrent_kernel)
        h = h_new if mask is None else np.where(mask[:, t, None], h_new, h)
        hidden_states[:, t] = h
    return hidden_states


def simple_rnn_step(x_t, h_prev, kernel, recurrent_kernel, bias, activation="tanh"):
    """One SimpleRNN step: tanh(x_t W + h_prev U + b).

    ``x_t`` is (batch, features), ``h_prev`` (batch, units); returns (batch, units).
    Introduced in notebook 03.
    """
    x_t, h_prev, kernel, recurrent_kernel, bias = _step_inputs(
        x_t, h_prev, kernel, recurrent_kernel, bias, 1)
    return _activation(activation)(x_t @ kernel + h_prev @ recurrent_kernel + bias)


def simple_rnn_backward(x, kernel, recurrent_kernel, bias, grad_hidden_states, h0=None, *,
                        mask=None, activation="tanh", return_grad_h0=False):
    """Backpropagation through time for ``simple_rnn``.

    ``grad_hidden_states`` is dL/dh_t for every t, (batch, time, units) (zeros
    where the loss does not use h_t). Walking back from the last step, each
    h_{t-1} collects the gradient that flows through U from step t:

        da_t = (dL/dh_t + carry_t) * tanh'(a_t),   carry_{t-1} = da_t U^T

    Returns ``(grad_x, grad_kernel, grad_recurrent_kernel, grad_bias)`` with the
    shapes of the inputs, plus ``grad_h0`` when ``return_grad_h0``.
    Introduced in notebook 03.
    """
    x, kernel, recurrent_kernel, bias, units, initial, mask = _rnn_inputs(
        x, kernel, recurrent_kernel, bias, 1, {"h0": h0}, mask)
    grad_hidden_states = _check_array("grad_hidden_states", grad_hidden_states)
    expected = x.shape[:2] + (units,)
    if grad_hidden_states.shape != expected:
        raise ValueError(f"grad_hidden_states must have the shape of the hidden states "
                         f"(batch, time, units) = {expected} for x {x.shape} and kernel "
                         f"{kernel.shape}, got grad_hidden_states {grad_hidden_states.shape}")
    act = _activation(activation)
    batch, steps, _ = x.shape
    inputs_projected = x @ kernel + bias
    previous = np.empty((batch, steps, units), dtype=x.dtype)  # h_{t-1} for every t
    activated = np.empty((batch, steps, units), dtype=x.dtype)  # act(a_t), before masking
    h = initial["h0"]
    for t in range(steps):
        previous[:, t] = h
        activated[:, t] = act(inputs_projected[:, t] + h @ recurrent_kernel)
        h = activated[:, t] if mask is None else np.where(mask[:, t, None], activated[:, t], h)

    grad_pre = np.empty_like(activated)  # dL/da_t
    carry = np.zeros((batch, units), dtype=x.dtype)  # dL/dh_t from the steps after t
    for t in reversed(range(steps)):
        grad_h = grad_hidden_states[:, t] + carry
        keep = 1.0 if mask is None else mask[:, t, None]
        grad_pre[:, t] = _activation_backward(activation, activated[:, t], grad_h * keep)
        carry = grad_pre[:, t] @ recurrent_kernel.T + grad_h * (1 - keep)
    grad_x = grad_pre @ kernel.T
    grad_kernel = np.einsum("ntf,ntu->fu", x, grad_pre)
    grad_recurrent_kernel = np.einsum("ntv,ntu->vu", previous, grad_pre)
    grad_bias = grad_pre.sum(axis=(0, 1))
    grads = (grad_x, grad_kernel, grad_recurrent_kernel, grad_bias)
    return grads + (carry,) if return_grad_h0 else grads


def _lstm_gates(inputs_projected_t, h_prev, recurrent_kernel, act, recurrent_act):
    z_i, z_f, z_c, z_o = np.split(inputs_projected_t + h_prev @ recurrent_kernel, 4, axis=-1)
    return {"i": recurrent_act(z_i), "f": recurrent_act(z_f), "c": act(z_c),
            "o": recurrent_act(z_o)}


def lstm_gates(x_t, h_prev, kernel, recurrent_kernel, bias, activation="tanh",
               recurrent_activation="sigmoid"):
    """The four LSTM gates of one step, as a dict in Keras order i, f, c, o.

    z = x_t W + h_prev U + b is split into four blocks of ``units`` columns:
    i = σ(z_i), f = σ(z_f), c = tanh(z_c) (the candidate), o = σ(z_o).
    Introduced in notebook 03.
    """
    x_t, h_prev, kernel, recurrent_kernel, bias = _step_inputs(
        x_t, h_prev, kernel, recurrent_kernel, bias, 4)
    return _lstm_gates(x_t @ kernel + bias, h_prev, recurrent_kernel,
                       _activation(activation), _activation(recurrent_activation))


def lstm_step(x_t, h_prev, c_prev, kernel, recurrent_kernel, bias, activation="tanh",
              recurrent_activation="sigmoid"):
    """One LSTM step; returns ``(h, c)``, each (batch, units).

    c = f * c_prev + i * c̃ and h = o * tanh(c), with the gates of ``lstm_gates``.
    Introduced in notebook 03.
    """
    gates = lstm_gates(x_t, h_prev, kernel, recurrent_kernel, bias, activation,
                       recurrent_activation)
    batch, units = gates["i"].shape
    c_prev = _rnn_state("c_prev", c_prev, batch, units, "x_t", _shape_of(x_t),
                        _shape_of(kernel), gates["i"].dtype)
    c = gates["f"] * c_prev + gates["i"] * gates["c"]
    return gates["o"] * _activation(activation)(c), c


def lstm(x, kernel, recurrent_kernel, bias, h0=None, c0=None, *, mask=None, activation="tanh",
         recurrent_activation="sigmoid", return_cell_states=False):
    """Every hidden state of ``keras.layers.LSTM``, (batch, time, units).

    Weights in Keras layout with the gates side by side in the order i, f, c, o:
    ``kernel`` (features, 4*units), ``recurrent_kernel`` (units, 4*units),
    ``bias`` (4*units,) (None for ``use_bias=False``). ``h0`` and ``c0`` (batch,
    units) default to zeros. ``mask`` (batch, time), True for real steps: a padded
    step keeps the previous h and c, as Keras does (see ``simple_rnn`` for the
    one difference with an initial state). With ``return_cell_states`` returns
    ``(hidden_states, cell_states)``. Introduced in notebook 03.
    """
    x, kernel, recurrent_kernel, bias, units, initial, mask = _rnn_inputs(
        x, kernel, recurrent_kernel, bias, 4, {"h0": h0, "c0": c0}, mask)
    act, recurrent_act = _activation(activation), _activation(recurrent_activation)
    inputs_projected = x @ kernel + bias  # (batch, time, 4*units)
    h, c = initial["h0"], initial["c0"]
    hidden_states = np.empty(x.shape[:2] + (units,), dtype=x.dtype)
    cell_states = np.empty_like(hidden_states)
    for t in range(x.shape[1]):
        gates = _lstm_gates(inputs_projected[:, t], h, recurrent_kernel, act, recurrent_act)
        c_new = gates["f"] * c + gates["i"] * gates["c"]
        h_new = gates["o"] * act(c_new)
        if mask is None:
            h, c = h_new, c_new
        else:
            keep = mask[:, t, None]
            h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
        hidden_states[:, t], cell_states[:, t] = h, c
    return (hidden_states, cell_states) if return_cell_states else hidden_states


def lstm_param_count(features: int, units: int, use_bias: bool = True) -> int:
    """Parameters of ``LSTM(units)`` on ``features`` inputs: 4 * (d*u + u*u + u).
    Introduced in notebook 03."""
    for name, value in (("features", features), ("units", units)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    return 4 * (features * units + units * units + (units if use_bias else 0))


# --- attention (notebook 06) -----------------------------------------------------------------

#: The score of a masked-out position, as in Keras: its weight becomes exp(-1e9) = 0, and
#: a row with every position masked gets uniform weights.
MASKED_SCORE = -1e9


def scaled_dot_product_attention(q, k, v, mask=None):
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V (Vaswani et al. 2017).

    ``q`` (N, Tq, d), ``k`` (N, Tk, d), ``v`` (N, Tk, dv); ``mask`` an optional boolean
    (N, Tq, Tk) array, True where query t may attend to key s (False positions get the
    score ``MASKED_SCORE``, as in Keras). Returns ``(output (N, Tq, dv), weights
    (N, Tq, Tk))``; every row of ``weights`` sums to 1. Introduced in notebook 06.
    """
    q = _check_array("q", q, 3, layout="(N, Tq, d)")
    k = _check_array("k", k, 3, layout="(N, Tk, d)", context=f"q has shape {q.shape}")
    v = _check_array("v", v, 3, layout="(N, Tk, dv)", context=f"k has shape {k.shape}")
    if k.shape[0] != q.shape[0] or k.shape[2] != q.shape[2]:
        raise ValueError(f"k must be (N, Tk, d) with the N and d of q: q {q.shape}, k {k.shape}")
    if v.shape[:2] != k.shape[:2]:
        raise ValueError(f"v must be (N, Tk, dv) with the N and Tk of k: k {k.shape}, "
                         f"v {v.shape}")
    scores = q @ np.swapaxes(k, 1, 2) / np.sqrt(q.shape[2])  # (N, Tq, Tk)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != scores.shape:
            raise ValueError(f"mask must be a boolean (N, Tq, Tk) array {scores.shape} for q "
                             f"{q.shape} and k {k.shape}, got {mask.dtype} {mask.shape}")
        scores = np.where(mask, scores, MASKED_SCORE)
    weights = softmax(scores, axis=-1)
    return weights @ v, weights


def multi_head_attention(query, value, weights, num_heads: int, key=None, mask=None):
    """``keras.layers.MultiHeadAttention(num_heads, key_dim)(query, value, key)`` by hand.

    ``query`` (N, Tq, d_q), ``value`` (N, Tv, d_v), ``key`` (N, Tv, d_k), default
    ``value``. ``weights`` is ``layer.get_weights()``: the query, key and value kernels
    (d_in, num_heads, key_dim) and biases (num_heads, key_dim), then the output kernel
    (num_heads, value_dim, d_model) and bias (d_model,). Each head h attends with its own
    projections, Q_h = query W_q[:, h] + b_q[h] (and so on), and the heads' outputs are
    projected back together: out = sum_h head_h W_o[h] + b_o. ``mask`` is an optional
    boolean (N, Tq, Tv) array, True where attention is allowed (Keras' ``attention_mask``).
    Returns the output (N, Tq, d_model). Introduced in notebook 06.
    """
    if isinstance(num_heads, bool) or not isinstance(num_heads, (int, np.integer)) \
            or num_heads < 1:
        raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
    if not isinstance(weights, (list, tuple)) or len(weights) != 8:
        raise ValueError("weights must be layer.get_weights() of a MultiHeadAttention with "
                         "biases: 8 arrays (query, key, value kernels and biases, output "
                         f"kernel and bias), got {type(weights).__name__} of "
                         f"{len(weights) if hasattr(weights, '__len__') else '?'}")
    query = _check_array("query", query, 3, layout="(N, Tq, d_q)")
    value = _check_array("value", value, 3, layout="(N, Tv, d_v)",
                         context=f"query has shape {query.shape}")
    key = value if key is None else _check_array("key", key, 3, layout="(N, Tv, d_k)",
                                                 context=f"value has shape {value.shape}")
    if value.shape[0] != query.shape[0] or key.shape[:2] != value.shape[:2]:
        raise ValueError(f"query, key and value must share N, and key and value their length "
                         f"Tv: query {query.shape}, key {key.shape}, value {value.shape}")
    (wq, bq, wk, bk, wv, bv, wo, bo) = (_check_array(f"weights[{i}]", w)
                                        for i, w in enumerate(weights))
    for name, kernel, inputs in (("query", wq, query), ("key", wk, key), ("value", wv, value)):
        if kernel.ndim != 3 or kernel.shape[0] != inputs.shape[2] or kernel.shape[1] != num_heads:
            raise ValueError(f"the {name} kernel must be (d_in, num_heads, head_dim) = "
                             f"({inputs.shape[2]}, {num_heads}, ...) for {name} "
                             f"{inputs.shape}, got {kernel.shape}")
    if wo.ndim != 3 or wo.shape[:2] != wv.shape[1:]:
        raise ValueError(f"the output kernel must be (num_heads, value_dim, d_model) with "
                         f"{wv.shape[1:]} first, got {wo.shape}")

    def project(x, kernel, bias):  # (N, T, d_in) -> (N, heads, T, head_dim)
        return np.einsum("ntd,dhk->nhtk", x, kernel) + bias[None, :, None, :]

    q, k, v = project(query, wq, bq), project(key, wk, bk), project(value, wv, bv)
    n, heads, tq, _ = q.shape
    flat = lambda a: a.reshape(n * heads, a.shape[2], a.shape[3])  # noqa: E731
    head_mask = None
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (n, tq, k.shape[2]):
            raise ValueError(f"mask must be a boolean (N, Tq, Tv) array {(n, tq, k.shape[2])} "
                             f"for query {query.shape} and value {value.shape}, got "
                             f"{mask.dtype} {mask.shape}")
        head_mask = np.repeat(mask, heads, axis=0)  # the same mask for every head
    attended, _ = scaled_dot_product_attention(flat(q), flat(k), flat(v), head_mask)
    attended = attended.reshape(n, heads, tq, -1)
    return np.einsum("nhtv,hvd->ntd", attended, wo) + bo


# --- vision transformer patches (notebook 07) -------------------------------


def patchify(images, patch_size: int) -> np.ndarray:
    """Cut images into non-overlapping square patches, as a vision transformer reads them.

    ``images`` (N, H, W, C) -> (N, (H / p) (W / p), p p C): patches in row-major order over
    the grid (left to right, then top to bottom), each flattened in (row, column, channel)
    order, the order of ``tf.image.extract_patches`` reshaped to (N, -1, p p C). H and W
    must be multiples of p = ``patch_size``. Introduced in notebook 07.
    """
    if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)) \
            or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be 4-D (N, H, W, C), got shape {images.shape}")
    n, height, width, channels = images.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"image height and width must be multiples of patch_size "
                         f"{patch_size}, got H={height}, W={width} (images {images.shape})")
    rows, columns = height // patch_size, width // patch_size
    grid = images.reshape(n, rows, patch_size, columns, patch_size, channels)
    return grid.transpose(0, 1, 3, 2, 4, 5).reshape(n, rows * columns,
                                                    patch_size * patch_size * channels)


# --- the audio front end (notebook 13) --------------------------------------


def _positive_integer(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_signal(signal, frame_length: int) -> np.ndarray:
    signal = _check_array("signal", signal, 1, layout="(samples,)")
    if signal.size == 0:
        raise ValueError("signal is an empty clip (0 samples): pass a 1-D array of samples")
    if signal.size < frame_length:
        raise ValueError(f"signal has {signal.size} samples, fewer than one frame of "
                         f"frame_length={frame_length}: pass a longer clip or a shorter frame")
    return signal


def hann_window(length: int) -> np.ndarray:
    """The Hann window of ``tf.signal.hann_window(length)`` (periodic, the default of
    ``tf.signal.stft``): w[n] = 0.5 - 0.5 cos(2 pi n / M), n = 0 .. length - 1, with
    M = length for an even length (periodic: the window's next sample would be 0) and,
    as TensorFlow does it, M = length - 1 for an odd one (the symmetric window, ending at 0).
    A window of length 1 is [1]. Introduced in notebook 13."""
    length = _positive_integer("length", length)
    if length == 1:
        return np.ones(1)
    period = length if length % 2 == 0 else length - 1
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / period)


def frame_signal(signal, frame_length: int, frame_step: int) -> np.ndarray:
    """Overlapping frames (frames, frame_length) of a 1-D signal, frame i starting at
    sample i * frame_step; the tail that fills no whole frame is dropped (``pad_end=False``,
    as ``tf.signal.frame``). A view, not a copy. Introduced in notebook 13."""
    frame_length = _positive_integer("frame_length", frame_length)
    frame_step = _positive_integer("frame_step", frame_step)
    signal = _check_signal(signal, frame_length)
    windows = np.lib.stride_tricks.sliding_window_view(signal, frame_length)
    return windows[::frame_step]


def _fft_length(frame_length: int, fft_length) -> int:
    if fft_length is None:  # tf.signal.stft's default: the next power of 2
        return 1 << (frame_length - 1).bit_length()
    fft_length = _positive_integer("fft_length", fft_length)
    if fft_length < frame_length:
        raise ValueError(f"fft_length must be >= frame_length={frame_length} (frames are "
                         f"zero-padded, never cropped), got {fft_length}")
    return fft_length


def stft(signal, frame_length: int, frame_step: int, fft_length: int | None = None):
    """The short-time Fourier transform by hand, equal to ``tf.signal.stft`` with its
    defaults (periodic Hann window, ``pad_end=False``).

    Each frame (``frame_signal``) is multiplied by ``hann_window(frame_length)``,
    zero-padded to ``fft_length`` (default: the next power of 2) and transformed by the
    real FFT: X[t, k] = sum_n w[n] x[t * step + n] exp(-2 pi i k n / fft_length), for
    k = 0 .. fft_length // 2. Returns complex (frames, fft_length // 2 + 1), vectorised
    over the frames. Introduced in notebook 13.
    """
    frame_length = _positive_integer("frame_length", frame_length)
    fft_length = _fft_length(frame_length, fft_length)
    frames = frame_signal(signal, frame_length, frame_step)
    return np.fft.rfft(frames * hann_window(frame_length), n=fft_length, axis=-1)


def hertz_to_mel(frequency):
    """The mel scale of HTK and TensorFlow: m = 1127 ln(1 + f / 700). Introduced in
    notebook 13."""
    return 1127.0 * np.log1p(np.asarray(frequency, dtype=np.float64) / 700.0)


def mel_weight_matrix(num_mel_bins: int, num_spectrogram_bins: int, sample_rate: float,
                      lower_hz: float, upper_hz: float) -> np.ndarray:
    """Triangular mel filters (num_spectrogram_bins, num_mel_bins), equal to
    ``tf.signal.linear_to_mel_weight_matrix`` with the same arguments.

    num_mel_bins + 2 edges are spaced evenly in mel from ``lower_hz`` to ``upper_hz``;
    filter j rises linearly (in mel) from edge j to 1 at edge j + 1 and falls to 0 at
    edge j + 2. The spectrogram bins are at k * (sample_rate / 2) / (bins - 1) Hz; the
    DC bin (k = 0) gets no weight, as in TensorFlow. Introduced in notebook 13.
    """
    num_mel_bins = _positive_integer("num_mel_bins", num_mel_bins)
    num_spectrogram_bins = _positive_integer("num_spectrogram_bins", num_spectrogram_bins)
    if num_spectrogram_bins < 2:
        raise ValueError(f"num_spectrogram_bins must be >= 2, got {num_spectrogram_bins}")
    for name, value in (("sample_rate", sample_rate), ("lower_hz", lower_hz),
                        ("upper_hz", upper_hz)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)):
            raise TypeError(f"{name} must be a number, got {value!r}")
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be > 0 Hz, got {sample_rate!r}")
    if not 0 <= lower_hz < upper_hz <= sample_rate / 2:
        raise ValueError(f"need 0 <= lower_hz < upper_hz <= sample_rate / 2 = "
                         f"{sample_rate / 2:g} Hz (Nyquist), got lower_hz={lower_hz!r}, "
                         f"upper_hz={upper_hz!r}")
    bin_hz = np.linspace(0.0, sample_rate / 2, num_spectrogram_bins)[1:]  # DC dropped
    bin_mel = hertz_to_mel(bin_hz)[:, None]
    edges = np.linspace(hertz_to_mel(lower_hz), hertz_to_mel(upper_hz), num_mel_bins + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - lower) / (centre - lower)
    falling = (upper - bin_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.concatenate([np.zeros((1, num_mel_bins)), weights])


#: log(mel energy + LOG_OFFSET), so that silence gives a finite log.
LOG_OFFSET = 1e-6


def log_mel_spectrogram(signal, sample_rate: float, frame_length: int, frame_step: int,
                        fft_length: int | None = None, num_mel_bins: int = 64,
                        lower_hz: float = 0.0, upper_hz: float | None = None) -> np.ndarray:
    """log(|STFT| @ mel filters + 1e-6), (frames, num_mel_bins): the magnitude of ``stft``,
    times ``mel_weight_matrix(num_mel_bins, fft_length // 2 + 1, sample_rate, lower_hz,
    upper_hz)`` (``upper_hz`` defaults to the Nyquist frequency), then the natural log.
    Equal to the same pipeline of ``tf.signal`` functions. Introduced in notebook 13."""
    frame_length = _positive_integer("frame_length", frame_length)
    fft_length = _fft_length(frame_length, fft_length)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer,
                                                                      np.floating)) \
            or not sample_rate > 0:
        raise ValueError(f"sample_rate must be a number > 0 Hz, got {sample_rate!r}")
    if upper_hz is None:
        upper_hz = sample_rate / 2
    weights = mel_weight_matrix(num_mel_bins, fft_length // 2 + 1, sample_rate, lower_hz,
                                upper_hz)
    magnitude = np.abs(stft(signal, frame_length, frame_step, fft_length))
    return np.log(magnitude @ weights + LOG_OFFSET)


def audio_benchmark():
    """The ``audio`` benchmark: the by-hand STFT (NumPy, vectorised over frames) against
    ``tf.signal.stft``, and the log-mel front end's cost per second of audio
    (``python -m mmcourse bench audio``). Whisper's parameters at 16 kHz: 25 ms window,
    10 ms hop, 80 mel bins. Introduced in notebook 13."""
    import tensorflow as tf

    from mmcourse.bench import BenchResult, Ratio, speedup, time_candidates

    sample_rate, seconds = 16000, 10
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(sample_rate * seconds).astype(np.float32)
    signal_tf = tf.constant(signal)
    frame_length, frame_step, fft_length = 400, 160, 512
    weights_tf = tf.signal.linear_to_mel_weight_matrix(80, fft_length // 2 + 1, sample_rate,
                                                       0.0, sample_rate / 2)

    def tensorflow_stft():
        return tf.signal.stft(signal_tf, frame_length, frame_step, fft_length).numpy()

    def tensorflow_log_mel():
        magnitude = tf.abs(tf.signal.stft(signal_tf, frame_length, frame_step, fft_length))
        return tf.math.log(tf.matmul(magnitude, weights_tf) + LOG_OFFSET).numpy()

    timings = time_candidates({
        "by hand (scratch.stft)": lambda: stft(signal, frame_length, frame_step, fft_length),
        "tensorflow (tf.signal.stft)": tensorflow_stft,
        "by hand log-mel": lambda: log_mel_spectrogram(signal, sample_rate, frame_length,
                                                       frame_step, fft_length, 80),
        "tensorflow log-mel": tensorflow_log_mel,
    }, repeats=7, warmup=2, items=seconds)
    by_name = {t.name: t for t in timings}
    difference = np.abs(stft(signal, frame_length, frame_step, fft_length)
                        - tensorflow_stft()).max()
    return BenchResult(
        name="audio",
        description="STFT of 10 s of 16 kHz audio (400-sample Hann window, hop 160, "
                    "512-point FFT) and an 80-bin log-mel: NumPy by hand vs tf.signal",
        timings=timings,
        ratios=[
            Ratio("by-hand / tensorflow STFT time",
                  speedup(timings, "by hand (scratch.stft)", "tensorflow (tf.signal.stft)"),
                  target=None, higher_is_better=False),
            Ratio("by-hand / tensorflow log-mel time",
                  speedup(timings, "by hand log-mel", "tensorflow log-mel"),
                  higher_is_better=False),
        ],
        facts={
            "by-hand log-mel ms per second of audio":
                f"{by_name['by hand log-mel'].median_s / seconds * 1e3:.3f}",
            "tensorflow log-mel ms per second of audio":
                f"{by_name['tensorflow log-mel'].median_s / seconds * 1e3:.3f}",
            "max |by hand - tensorflow| (STFT)": f"{difference:.2e}",
        },
    )


# --- video tubelets (notebook 13) -------------------------------------------


def tubeletify(videos, tubelet_size) -> np.ndarray:
    """Cut videos into non-overlapping tubelets, as ViViT reads them (Arnab et al. 2021).

    ``videos`` (N, T, H, W, C), ``tubelet_size`` (t, p, p) or (t, ph, pw) ->
    (N, (T / t)(H / ph)(W / pw), t ph pw C): tubelets in (time, row, column) order, each
    flattened in (frame, row, column, channel) order, the layout of a ``Conv3D`` kernel.
    Introduced in notebook 13."""
    videos = np.asarray(videos)
    if videos.ndim != 5:
        raise ValueError(f"videos must be 5-D (N, T, H, W, C), got shape {videos.shape}")
    if isinstance(tubelet_size, (int, np.integer)) and not isinstance(tubelet_size, bool):
        tubelet_size = (tubelet_size,) * 3
    if not isinstance(tubelet_size, (tuple, list)) or len(tubelet_size) != 3:
        raise ValueError(f"tubelet_size must be an int or (t, ph, pw), got {tubelet_size!r}")
    t, ph, pw = (_positive_integer("tubelet_size", s) for s in tubelet_size)
    n, frames, height, width, channels = videos.shape
    if frames % t or height % ph or width % pw:
        raise ValueError(f"videos (N, T, H, W, C) = {videos.shape} must split evenly into "
                         f"tubelets of tubelet_size {(t, ph, pw)}")
    grid = videos.reshape(n, frames // t, t, height // ph, ph, width // pw, pw, channels)
    grid = grid.transpose(0, 1, 3, 5, 2, 4, 6, 7)
    return grid.reshape(n, (frames // t) * (height // ph) * (width // pw), t * ph * pw * channels)


def tubelet_embedding(videos, kernel, bias=None) -> np.ndarray:
    """ViViT's tubelet embedding by hand: each tubelet (``tubeletify``) flattened and
    projected, tokens = tubelets @ W + b, equal to ``keras.layers.Conv3D(filters,
    kernel_size=(t, p, p), strides=(t, p, p))`` with the same ``kernel`` (t, p, p, C,
    filters) and ``bias`` (filters,), its output (N, T', H', W', filters) reshaped to
    (N, T' H' W', filters). Introduced in notebook 13."""
    kernel = _check_array("kernel", kernel, 5, layout="(t, ph, pw, C, filters)")
    videos = _check_array("videos", videos, 5, layout="(N, T, H, W, C)")
    if videos.shape[-1] != kernel.shape[3]:
        raise ValueError(f"kernel has C={kernel.shape[3]} but videos have {videos.shape[-1]} "
                         f"channels: videos {videos.shape}, kernel {kernel.shape}")
    tubelets = tubeletify(videos, kernel.shape[:3])
    tokens = tubelets @ kernel.reshape(-1, kernel.shape[-1])
    if bias is not None:
        tokens = tokens + _check_bias(bias, kernel.reshape(-1, kernel.shape[-1]), "filters")
    return tokens
