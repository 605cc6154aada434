"""NumPy implementations of the layers, proven equal to Keras (notebooks 02-13).

The family's public face: ``mmcourse.scratch.conv2d`` and the rest work without knowing
the files inside. Weights use Keras layouts, so ``layer.get_weights()`` can be passed
straight in. One module per topic: ``cnn`` (dense, convolution, pooling; notebook 02),
``rnn`` (03), ``attention`` (06), ``vit`` (patches, 07), ``audio`` and ``video`` (13),
``realfamily`` (Gemma, PaliGemma and CLIP pieces, 11; LoRA's dense layer, 12), on top of
``activations`` and ``checks`` (the argument checks they share).
"""

from __future__ import annotations

from mmcourse.scratch.activations import ACTIVATIONS, relu, sigmoid, softmax, tanh
from mmcourse.scratch.attention import (
    MASKED_SCORE,
    multi_head_attention,
    scaled_dot_product_attention,
)
from mmcourse.scratch.audio import (
    LOG_OFFSET,
    audio_benchmark,
    frame_signal,
    hann_window,
    hertz_to_mel,
    log_mel_spectrogram,
    mel_weight_matrix,
    stft,
)
from mmcourse.scratch.cnn import (
    avg_pool2d,
    benchmark,
    conv2d,
    conv2d_backward,
    conv2d_naive,
    conv_output_size,
    dense,
    dense_backward,
    im2col,
    max_pool2d,
    numerical_gradient,
    receptive_field,
    same_padding,
)
from mmcourse.scratch.realfamily import (
    geglu,
    grouped_query_attention,
    lora_dense,
    prefix_lm_mask,
    rms_norm,
    rotary_embedding,
)
from mmcourse.scratch.rnn import (
    LSTM_GATES,
    lstm,
    lstm_gates,
    lstm_param_count,
    lstm_step,
    simple_rnn,
    simple_rnn_backward,
    simple_rnn_step,
)
from mmcourse.scratch.video import tubelet_embedding, tubeletify
from mmcourse.scratch.vit import patchify

__all__ = [
    "ACTIVATIONS", "LOG_OFFSET", "LSTM_GATES", "MASKED_SCORE",
    "audio_benchmark", "avg_pool2d", "benchmark", "conv2d", "conv2d_backward", "conv2d_naive",
    "conv_output_size", "dense", "dense_backward", "frame_signal", "geglu",
    "grouped_query_attention", "hann_window", "hertz_to_mel", "im2col", "log_mel_spectrogram",
    "lora_dense", "lstm", "lstm_gates", "lstm_param_count", "lstm_step", "max_pool2d",
    "mel_weight_matrix", "multi_head_attention", "numerical_gradient", "patchify",
    "prefix_lm_mask", "receptive_field", "relu", "rms_norm", "rotary_embedding", "same_padding",
    "scaled_dot_product_attention", "sigmoid", "simple_rnn", "simple_rnn_backward",
    "simple_rnn_step", "softmax", "stft", "tanh", "tubelet_embedding", "tubeletify",
]
