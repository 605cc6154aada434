"""Dense, convolution (loops and im2col) and pooling layers by hand, with their gradients,
equal to Keras with the same weights, and the ``conv`` benchmark (notebook 02).

Weights use Keras layouts, so ``layer.get_weights()`` can be passed straight in.
"""

from __future__ import annotations

import numpy as np

from mmcourse.scratch.activations import activation_backward, activation_function
from mmcourse.scratch.checks import check_array, check_bias

# Dense: f(x) = sigma(x W + b), Keras layout kernel (in_features, units).


def _check_dense(x, kernel, bias):
    x = check_array("x", x, layout="(..., in_features)")
    kernel = check_array("kernel", kernel, 2, layout="(in_features, units)",
                         context=f"x has shape {x.shape}")
    if x.ndim == 0:
        raise ValueError(f"x must have at least 1 dimension (..., in_features), got shape "
                         f"{x.shape}; kernel {kernel.shape}")
    if x.shape[-1] != kernel.shape[0]:
        raise ValueError(f"kernel expects in_features={kernel.shape[0]} but x has "
                         f"{x.shape[-1]} features: x {x.shape}, kernel {kernel.shape}")
    return x, kernel, check_bias(bias, kernel, "units")


def dense(x, kernel, bias=None, activation=None):
    """The article's f(x) = sigma(W x + b), as Keras computes it: ``activation(x @ kernel + bias)``.

    ``x`` is (..., in_features), ``kernel`` is (in_features, units), ``bias`` is (units,);
    ``activation`` is None or "sigmoid", "relu", "tanh", "softmax". Pass
    ``keras.layers.Dense(...).get_weights()`` straight in. Introduced in notebook 02.
    """
    act = activation_function(activation)
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
    activation_function(activation)
    x, kernel, bias = _check_dense(x, kernel, bias)
    grad_output = check_array("grad_output", grad_output)
    expected = x.shape[:-1] + (kernel.shape[1],)
    if grad_output.shape != expected:
        raise ValueError(f"grad_output must have the output's shape {expected}, got "
                         f"{grad_output.shape}: x {x.shape}, kernel {kernel.shape}")
    output = dense(x, kernel, bias, activation)
    grad_z = activation_backward(activation, output, grad_output)
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
    x = check_array("x", x)
    kernel = check_array("kernel", kernel)
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, H, W, C_in), got x {x.shape}; kernel {kernel.shape}")
    if kernel.ndim != 4:
        raise ValueError(f"kernel must be 4-D (kh, kw, C_in, C_out), got kernel {kernel.shape}; "
                         f"x {x.shape}")
    if kernel.shape[2] != x.shape[3]:
        raise ValueError(f"kernel has C_in={kernel.shape[2]} but x has {x.shape[3]} channels: "
                         f"x {x.shape}, kernel {kernel.shape}")
    bias = check_bias(bias, kernel, "C_out")
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
    x = check_array("x", x, 4, layout="(N, H, W, C)", context=f"kernel_size {(kh, kw)}")
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
    grad_output = check_array("grad_output", grad_output)
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
    x = check_array("x", x, 4, layout="(N, H, W, C)", context=f"pool_size {pool}")
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
    x = check_array("x", x).astype(np.float64)  # a copy, perturbed in place below
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
