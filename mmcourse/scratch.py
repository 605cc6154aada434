"""NumPy implementations of the layers, proven equal to Keras (notebooks 02 and 03).

Weights use Keras layouts, so ``layer.get_weights()`` can be passed straight in.
"""

from __future__ import annotations

import numpy as np

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
    if bias is not None:
        bias = _check_array("bias", bias)
        if bias.shape != (kernel.shape[1],):
            raise ValueError(f"bias must have shape ({kernel.shape[1]},) to match kernel "
                             f"{kernel.shape} (units={kernel.shape[1]}), got bias {bias.shape}")
    return x, kernel, bias


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


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """(pad_before, pad_after) that TensorFlow/Keras add for padding="same".

    The output has ceil(size / stride) positions; the total padding is
    max((out - 1) * stride + kernel_size - size, 0), split with the extra cell at the
    end (bottom/right). Introduced in notebook 02.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


def conv_output_size(size: int, kernel_size: int, stride: int = 1,
                     padding: str = "valid") -> int:
    """Output length of a convolution or pooling along one axis, as in Keras.

    valid: floor((size - kernel_size) / stride) + 1;  same: ceil(size / stride).
    Introduced in notebook 02.
    """
    if _check_padding(padding) == "same":
        return -(-size // stride)
    return (size - kernel_size) // stride + 1


def receptive_field(layers) -> int:
    """Receptive field (in input pixels) of a stack of (kernel_size, stride) layers.

    r = 1 + sum_l (k_l - 1) * prod_{i<l} s_i. Introduced in notebook 02.
    """
    field, jump = 1, 1
    for kernel_size, stride in layers:
        field += (kernel_size - 1) * jump
        jump *= stride
    return field


def _window_geometry(x_shape, window, strides, padding, what, context):
    """Output size and padding of a sliding window; errors name both shapes."""
    (kh, kw), (sh, sw) = window, strides
    _, height, width, _ = x_shape
    if padding == "valid" and (kh > height or kw > width):
        raise ValueError(f"{what} {(kh, kw)} is larger than the input with padding='valid': "
                         f"x {tuple(x_shape)}, {context}")
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
    if bias is not None:
        bias = _check_array("bias", bias)
        if bias.shape != (kernel.shape[3],):
            raise ValueError(f"bias must have shape ({kernel.shape[3]},) to match kernel "
                             f"{kernel.shape} (C_out={kernel.shape[3]}), got bias {bias.shape}")
    geometry = _window_geometry(x.shape, kernel.shape[:2], strides, padding, "kernel",
                                f"kernel {kernel.shape}")
    return x, kernel, bias, strides, geometry


def im2col(x, kernel_size, strides=1, padding="valid"):
    """The patch matrix of a convolution: shape (N, out_h, out_w, kh * kw * C).

    Row (n, i, j) holds the input window under output pixel (i, j), flattened in the
    order (kh, kw, C), so ``im2col(x, ...) @ kernel.reshape(-1, C_out)`` is the
    convolution. Gathered with one strided copy per kernel offset (kh * kw of them),
    never a loop over pixels. Introduced in notebook 02.
    """
    kh, kw = _pair("kernel_size", kernel_size)
    x = _check_array("x", x, 4, layout="(N, H, W, C)", context=f"kernel_size {(kh, kw)}")
    strides = _pair("strides", strides)
    padding = _check_padding(padding)
    (out_h, out_w), pads = _window_geometry(x.shape, (kh, kw), strides, padding, "kernel_size",
                                            f"kernel_size {(kh, kw)}")
    return _im2col(_pad(x, pads), kh, kw, strides, out_h, out_w)


def _im2col(padded, kh, kw, strides, out_h, out_w):
    sh, sw = strides
    batch, channels = padded.shape[0], padded.shape[3]
    patches = np.empty((batch, out_h, out_w, kh, kw, channels), dtype=padded.dtype)
    for i in range(kh):
        for j in range(kw):
            patches[:, :, :, i, j, :] = padded[:, i:i + sh * (out_h - 1) + 1:sh,
                                               j:j + sw * (out_w - 1) + 1:sw, :]
    return patches.reshape(batch, out_h, out_w, kh * kw * channels)


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
    patches = _im2col(_pad(x.astype(dtype, copy=False), pads), kh, kw, strides, out_h, out_w)
    out = patches.reshape(-1, kh * kw * c_in) @ kernel.astype(dtype, copy=False).reshape(-1, c_out)
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

    grad_kernel = patchesᵀ · grad_output (one matmul); grad_x scatters
    grad_output · kernelᵀ back onto the input windows (col2im, one strided add per
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
    padded = _pad(x.astype(dtype, copy=False), pads)
    flat_grad = grad_output.astype(dtype, copy=False).reshape(-1, c_out)
    patches = _im2col(padded, kh, kw, (sh, sw), out_h, out_w).reshape(-1, kh * kw * c_in)
    grad_kernel = (patches.T @ flat_grad).reshape(kh, kw, c_in, c_out)
    grad_bias = flat_grad.sum(axis=0)
    grad_patches = (flat_grad @ kernel.astype(dtype, copy=False).reshape(-1, c_out).T)
    grad_patches = grad_patches.reshape(x.shape[0], out_h, out_w, kh, kw, c_in)
    grad_padded = np.zeros(padded.shape, dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            grad_padded[:, i:i + sh * (out_h - 1) + 1:sh,
                        j:j + sw * (out_w - 1) + 1:sw, :] += grad_patches[:, :, :, i, j, :]
    (top, _), (left, _) = pads
    grad_x = grad_padded[:, top:top + x.shape[1], left:left + x.shape[2], :]
    return grad_x, grad_kernel, grad_bias


def _pool(x, pool_size, strides, padding, reduce):
    pool = _pair("pool_size", pool_size)
    strides = pool if strides is None else _pair("strides", strides)
    padding = _check_padding(padding)
    x = _check_array("x", x, 4, layout="(N, H, W, C)", context=f"pool_size {pool}")
    (out_h, out_w), pads = _window_geometry(x.shape, pool, strides, padding, "pool_size",
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


# --- recurrent layers (notebook 03) ------------------------------------------
