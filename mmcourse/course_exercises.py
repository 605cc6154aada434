"""The course's exercises, one ``notebook_NN()`` function per notebook.

Each returns an ``ExerciseSet`` (see ``mmcourse.exercises``); a notebook uses
``ex = notebook_02()`` and then ``ex.q1.check(...)``. Every exercise carries a
``reference`` (right answer) and ``wrong`` answers, and
``tests/test_course_exercises.py`` checks each one with both.
"""

from __future__ import annotations

import numpy as np

from mmcourse.exercises import Exercise, ExerciseSet, expect_function, expect_model, expect_value


def notebook_00() -> ExerciseSet:
    """Exercises of notebook 00: shapes, devices, seeds and parameter counts."""
    import re

    from mmcourse.exercises import Incorrect

    def reference_draws(seed):
        return np.random.default_rng(seed).normal(size=3)

    def check_cpu_device(answer):
        if not isinstance(answer, str):
            raise Incorrect(f"give the device as a string such as '/GPU:0', got "
                            f"{type(answer).__name__}.")
        if re.fullmatch(r"/?(device:)?cpu:0", answer.strip(), flags=re.IGNORECASE) is None:
            raise Incorrect(f"{answer!r} is not the first CPU: TensorFlow names devices "
                            f"'/<TYPE>:<index>', counting from 0.")

    return ExerciseSet("00", [
        Exercise(
            name="q1",
            prompt="The shape of tf.matmul(a, b) for a of shape (2, 3) and b of shape (3, 4).",
            checker=expect_value((2, 4)),
            hints=["A matrix product (m, k) @ (k, n) has shape (m, n).",
                   "Write the shape as a tuple of ints, or use tuple(tensor.shape)."],
            solution_code="a = tf.ones((2, 3))\nb = tf.ones((3, 4))\n"
                          "ex.q1.check(tuple(tf.matmul(a, b).shape))  # (2, 4)",
            reference=lambda: (2, 4),
            wrong=lambda: [(3, 3), (2, 3), (4, 2), 8],
        ),
        Exercise(
            name="q2",
            prompt="The device string to pass to tf.device(...) to run ops on the first CPU.",
            checker=check_cpu_device,
            hints=["Devices are named '/<TYPE>:<index>', like '/GPU:0'.",
                   "Indices count from 0; tf.config.list_logical_devices('CPU') lists them."],
            solution_code='ex.q2.check("/CPU:0")\n'
                          'with tf.device("/CPU:0"):\n    y = tf.matmul(a, b)',
            reference=lambda: "/CPU:0",
            wrong=lambda: ["/GPU:0", "/CPU:1", "cpu", 0],
        ),
        Exercise(
            name="q3",
            prompt="A function seeded_draws(seed) returning 3 draws from "
                   "np.random.default_rng(seed).normal(): the same numbers for the same seed.",
            checker=expect_function(reference_draws, [(0,), (42,), (2026,)]),
            hints=["Make a new Generator inside the function from the seed: "
                   "np.random.default_rng(seed).",
                   "Generator.normal(size=3) returns an array of 3 draws."],
            solution_code="def seeded_draws(seed):\n"
                          "    return np.random.default_rng(seed).normal(size=3)",
            reference=lambda: reference_draws,
            wrong=lambda: [
                lambda seed: np.random.normal(size=3),  # global state: ignores the seed
                lambda seed: np.random.default_rng(0).normal(size=3),  # always seed 0
                lambda seed: np.random.default_rng(seed).normal(size=2),
                lambda seed: np.random.default_rng(seed).uniform(size=3),
            ],
        ),
        Exercise(
            name="q4",
            prompt="The number of parameters of keras.layers.Dense(8) applied to 4 input features.",
            checker=expect_value(40),
            hints=["A Dense layer has a weight per (input, unit) pair plus one bias per unit.",
                   "Build it and ask Keras: layer.build((None, 4)); layer.count_params()."],
            solution_code="layer = keras.layers.Dense(8)\nlayer.build((None, 4))\n"
                          "ex.q4.check(layer.count_params())  # 4 * 8 + 8 = 40",
            reference=lambda: 40,
            wrong=lambda: [32, 36, 48, 12],
        ),
    ])


def notebook_02() -> ExerciseSet:
    """Exercises of notebook 02 (CNN math): dense layer, padding, shapes, parameters,
    receptive fields."""
    from mmcourse import scratch
    from mmcourse.exercises import Incorrect

    rng = np.random.default_rng(2)
    dense_cases = [(rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)),
                   (rng.normal(size=(1, 5)), rng.normal(size=(5, 4)), rng.normal(size=4))]

    def dense_reference(x, kernel, bias):
        return scratch.dense(x, kernel, bias, activation="sigmoid")

    padding_cases = [(size, kernel_size, stride) for size in (1, 5, 6, 7, 28, 64)
                     for kernel_size in (1, 2, 3, 4, 5) for stride in (1, 2, 3)]

    def check_padding(answer):
        if not callable(answer):
            raise Incorrect(f"pass your function itself (no parentheses), got "
                            f"{type(answer).__name__}.")
        for size, kernel_size, stride in padding_cases:
            case = f"size={size}, kernel_size={kernel_size}, stride={stride}"
            try:
                result = answer(size, kernel_size, stride)
            except Exception as error:  # the learner's bug, reported, not raised
                raise Incorrect(f"for {case} it raised {type(error).__name__}: {error}") from None
            expected = scratch.same_padding(size, kernel_size, stride)
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise Incorrect(f"return a pair (pad_before, pad_after); for {case} it returned "
                                f"{result!r}.")
            if tuple(result) != expected:
                raise Incorrect(f"for {case} you pad {tuple(result)} (before, after); Keras "
                                f"pads {expected}.")

    def check_params(answer):
        reasons = {3 * 3 * 16 * 32: "that is the kernel alone: add one bias per filter.",
                   3 * 3 * 32 + 32: "each filter spans all 16 input channels, not one."}
        if isinstance(answer, (int, np.integer)) and int(answer) in reasons:
            raise Incorrect(f"{int(answer)}: {reasons[int(answer)]}")
        expect_value(3 * 3 * 16 * 32 + 32)(answer)  # raises Incorrect for anything else

    def check_shape(answer):
        if not isinstance(answer, (tuple, list)) or len(answer) != 3:
            raise Incorrect(f"give a tuple (height, width, channels), got {answer!r}.")
        if answer[2] != 32:
            raise Incorrect("the channel axis is wrong: it equals the number of filters of the "
                            "last Conv2D.")
        if tuple(answer[:2]) != (15, 15):
            raise Incorrect(f"the channels are right but the spatial size {tuple(answer[:2])} is "
                            f"not: apply the valid formula to the first layer, then the same "
                            f"formula to the second.")

    return ExerciseSet("notebook_02", [
        Exercise(
            name="q1",
            prompt="Write my_dense(x, kernel, bias) = sigmoid(x @ kernel + bias) for a batch x "
                   "(N, in_features), kernel (in_features, units), bias (units,).",
            checker=expect_function(dense_reference, dense_cases),
            hints=["The article's f(x) = σ(W·x + b) with Keras' layout is x @ kernel + bias, "
                   "then the sigmoid 1 / (1 + exp(-z)) element-wise.",
                   "Keras stores kernel as (in_features, units), so no transpose is needed."],
            solution_code="def my_dense(x, kernel, bias):\n"
                          "    z = x @ kernel + bias\n"
                          "    return 1 / (1 + np.exp(-z))",
            reference=lambda: dense_reference,
            wrong=lambda: [lambda x, kernel, bias: 1 / (1 + np.exp(-(x @ kernel))),
                           lambda x, kernel, bias: x @ kernel + bias,
                           lambda x, kernel, bias: 1 / (1 + np.exp(-(kernel.T @ x + bias)))],
        ),
        Exercise(
            name="q2",
            prompt="Write same_padding_amounts(size, kernel_size, stride) returning "
                   "(pad_before, pad_after), the zeros Keras adds along one axis for "
                   "padding='same'.",
            checker=check_padding,
            hints=["The output has ceil(size / stride) positions; the last window must end "
                   "inside the padded input, so total = (out - 1) * stride + kernel_size - "
                   "size, but never negative.",
                   "TensorFlow puts total // 2 before and the rest (the extra one when total is "
                   "odd) after."],
            solution_code="def same_padding_amounts(size, kernel_size, stride):\n"
                          "    out = -(-size // stride)  # ceil(size / stride)\n"
                          "    total = max((out - 1) * stride + kernel_size - size, 0)\n"
                          "    return total // 2, total - total // 2",
            reference=lambda: scratch.same_padding,
            wrong=lambda: [
                lambda size, k, stride: ((k - 1) // 2, (k - 1) // 2),  # ignores the stride
                lambda size, k, stride: scratch.same_padding(size, k, stride)[::-1],  # extra first
                lambda size, k, stride: (  # forgets that the total can't be negative
                    ((-(-size // stride) - 1) * stride + k - size) // 2,
                    ((-(-size // stride) - 1) * stride + k - size)
                    - ((-(-size // stride) - 1) * stride + k - size) // 2),
            ],
        ),
        Exercise(
            name="q3",
            prompt="An input of shape (64, 64, 3) goes through Conv2D(16, 5, strides=2, "
                   "padding='valid') and then Conv2D(32, 3, strides=2, padding='same'). What "
                   "is the output shape, without the batch axis?",
            checker=check_shape,
            hints=["valid: floor((size - kernel) / stride) + 1; same: ceil(size / stride).",
                   "The channel axis of the output is the number of filters of the last "
                   "Conv2D."],
            solution_code="first = (64 - 5) // 2 + 1      # 30, valid\n"
                          "second = -(-first // 2)        # 15, same: ceil(30 / 2)\n"
                          "answer = (second, second, 32)",
            reference=lambda: (15, 15, 32),
            wrong=lambda: [(14, 14, 32), (16, 16, 32), (15, 15, 16), (30, 30, 32)],
        ),
        Exercise(
            name="q4",
            prompt="How many parameters does Conv2D(32, (3, 3)) have when its input has 16 "
                   "channels?",
            checker=check_params,
            hints=["Each of the 32 filters spans 3 x 3 positions of all 16 input channels.",
                   "Don't forget one bias per filter."],
            solution_code="answer = 3 * 3 * 16 * 32 + 32  # kernel + bias = 4640",
            reference=lambda: 3 * 3 * 16 * 32 + 32,
            wrong=lambda: [3 * 3 * 16 * 32, 3 * 3 * 32 + 32, 3 * 3 * 16 + 16],
        ),
        Exercise(
            name="q5",
            prompt="What is the receptive field (in input pixels, along one axis) of Conv2D 3x3 "
                   "stride 1, then MaxPooling2D 2x2 stride 2, then Conv2D 3x3 stride 1?",
            checker=expect_value(8),
            hints=["r = 1 + sum over layers of (k_l - 1) times the product of the strides "
                   "of the layers before l.",
                   "After the pooling every step of the last conv moves 2 input pixels."],
            solution_code="answer = 1 + (3 - 1) * 1 + (2 - 1) * 1 + (3 - 1) * 2  # = 8\n"
                          "# or scratch.receptive_field([(3, 1), (2, 2), (3, 1)])",
            reference=lambda: 8,
            wrong=lambda: [7, 6, 5, 10],
        ),
    ])


def notebook_03() -> ExerciseSet:
    """Exercises of notebook 03: one SimpleRNN step, LSTM parameters and gates, masks."""
    from mmcourse import scratch

    rng = np.random.default_rng(3)

    def step_case(batch, features, units):
        return (rng.normal(size=(batch, features)), rng.normal(size=(batch, units)),
                rng.normal(size=(features, units)) * 0.5, rng.normal(size=(units, units)) * 0.5,
                rng.normal(size=units) * 0.5)

    step_cases = [step_case(2, 3, 4), step_case(1, 5, 2), step_case(3, 1, 3)]

    def forget_kernel(kernel):
        units = kernel.shape[1] // 4
        return kernel[:, units:2 * units]

    kernel_cases = [(rng.normal(size=(3, 16)),), (rng.normal(size=(5, 8)),),
                    (rng.normal(size=(8, 8)),)]

    def padding_mask(token_ids):
        return np.asarray(token_ids) != 0

    token_cases = [(np.array([[4, 9, 2, 0, 0], [1, 7, 0, 0, 0]]),),
                   (np.array([[3, 1, 5, 6, 8, 2]]),),
                   (np.array([[0, 0, 0], [2, 1, 0]]),)]

    return ExerciseSet("03", [
        Exercise(
            name="q1",
            prompt="A function rnn_step(x_t, h_prev, kernel, recurrent_kernel, bias) returning "
                   "one SimpleRNN step, tanh(x_t W + h_prev U + b), in Keras's weight layout.",
            checker=expect_function(scratch.simple_rnn_step, step_cases),
            hints=["Keras multiplies row vectors from the left: x_t @ kernel has shape "
                   "(batch, units), and so does h_prev @ recurrent_kernel.",
                   "np.tanh(x_t @ kernel + h_prev @ recurrent_kernel + bias)"],
            solution_code="def rnn_step(x_t, h_prev, kernel, recurrent_kernel, bias):\n"
                          "    return np.tanh(x_t @ kernel + h_prev @ recurrent_kernel + bias)\n"
                          "\nex.q1.check(rnn_step)",
            reference=lambda: scratch.simple_rnn_step,
            wrong=lambda: [
                lambda x, h, w, u, b: np.tanh(x @ w + b),  # forgets the previous state
                lambda x, h, w, u, b: np.tanh(x @ w + h @ u.T + b),  # U transposed
                lambda x, h, w, u, b: scratch.sigmoid(x @ w + h @ u + b),  # wrong activation
                lambda x, h, w, u, b: x @ w + h @ u + b,  # no activation
            ],
        ),
        Exercise(
            name="q2",
            prompt="The number of parameters of keras.layers.LSTM(16) on 8 input features.",
            checker=expect_value(scratch.lstm_param_count(8, 16)),
            hints=["Each of the 4 gates (i, f, c, o) has its own input weights (d x u), "
                   "recurrent weights (u x u) and bias (u).",
                   "4 * (d*u + u*u + u) with d = 8, u = 16; or build the layer and call "
                   "count_params()."],
            solution_code="ex.q2.check(4 * (8 * 16 + 16 * 16 + 16))  # 1600\n"
                          "# or: layer = keras.layers.LSTM(16); layer.build((None, None, 8)); "
                          "layer.count_params()",
            reference=lambda: 4 * (8 * 16 + 16 * 16 + 16),
            wrong=lambda: [8 * 16 + 16 * 16 + 16, 4 * (8 * 16 + 16 * 16), 4 * (8 * 16 + 16),
                           16 * 16 + 8 * 16],
        ),
        Exercise(
            name="q3",
            prompt="A function forget_kernel(kernel) returning the forget gate's block of an "
                   "LSTM kernel of shape (features, 4*units), Keras gate order i, f, c, o.",
            checker=expect_function(forget_kernel, kernel_cases),
            hints=["The gates sit side by side along the last axis, units columns each; "
                   "the forget gate is the second block (index 1).",
                   "units = kernel.shape[1] // 4; return kernel[:, units:2 * units]"],
            solution_code="def forget_kernel(kernel):\n"
                          "    units = kernel.shape[1] // 4\n"
                          "    return kernel[:, units:2 * units]\n\nex.q3.check(forget_kernel)",
            reference=lambda: forget_kernel,
            wrong=lambda: [
                lambda k: k[:, :k.shape[1] // 4],  # the input gate
                lambda k: k[:, 2 * (k.shape[1] // 4):3 * (k.shape[1] // 4)],  # candidate
                lambda k: k[:, 1::4],  # every fourth column: gates are blocks, not interleaved
                lambda k: k[:, k.shape[1] // 4:],  # the rest, not one block
            ],
        ),
        Exercise(
            name="q4",
            prompt="A function padding_mask(token_ids) returning the boolean mask that "
                   "Embedding(mask_zero=True) passes to the LSTM (True = a real token).",
            checker=expect_function(padding_mask, token_cases),
            hints=["Token id 0 is the padding; every other id is a real token, even 1 "
                   "([UNK]).",
                   "token_ids != 0"],
            solution_code="def padding_mask(token_ids):\n    return token_ids != 0\n\n"
                          "ex.q4.check(padding_mask)",
            reference=lambda: padding_mask,
            wrong=lambda: [
                lambda ids: ids == 0,  # inverted
                lambda ids: ids > 1,  # treats [UNK] as padding
                lambda ids: np.ones_like(ids, dtype=bool),  # masks nothing
            ],
        ),
    ])


def notebook_01() -> ExerciseSet:
    """Exercises of notebook 01: word swaps for flips, normalisation, padding, label counts."""
    from mmcourse.exercises import Incorrect, compare

    def swap_vertical(text):
        from mmcourse.augment import swap_spatial_words

        return swap_spatial_words(text, horizontal=False)

    def naive_swap(text):  # the classic bug: the second replace undoes the first
        return text.replace("above", "below").replace("below", "above")

    texts = [("a red circle above a blue square",), ("a green square below a cyan circle",),
             ("is the red object at the top or bottom",), ("a red circle left of a blue square",),
             ("there are two objects",)]
    check_swap = expect_function(swap_vertical, texts)

    def normalise(image):
        return image.astype(np.float32) / 255.0

    images = [(np.array([[[0, 128, 255]]], np.uint8),),
              (np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5,)]
    check_values = expect_function(normalise, images)

    def check_normalise(answer):
        check_values(answer)
        result = answer(images[0][0])
        if getattr(result, "dtype", None) != np.float32:
            raise Incorrect(f"the values are right but the dtype is "
                            f"{getattr(result, 'dtype', type(result).__name__)}; Keras layers "
                            f"expect float32: use .astype(np.float32).")

    def pad_or_truncate(token_ids, length):
        return np.array((list(token_ids) + [0] * length)[:length], dtype=np.int32)

    pad_cases = [([5, 7, 2], 5), ([3, 4, 5, 6, 7, 8], 4), ([], 3), ([9], 1)]

    def first_batch_positives():
        from mmcourse.data import ensure_data, load_records

        records = load_records("match", "relations", "val", ensure_data())
        return int(sum(record["label"] for record in records[:32]))

    def check_positives(answer):
        compare(answer, first_batch_positives(), what="your count")

    return ExerciseSet("01", [
        Exercise(
            name="q1",
            prompt="A function swap_vertical(text) that keeps a caption true when its image is "
                   "flipped upside down: swap above/below and top/bottom, whole words, in one pass.",
            checker=check_swap,
            hints=["text.replace('above', 'below').replace('below', 'above') turns every word "
                   "into 'above': the second replace undoes the first. Swap word by word.",
                   "Split into words, map each through {'above': 'below', 'below': 'above', "
                   "'top': 'bottom', 'bottom': 'top'} (default: the word itself), join."],
            solution_code="def swap_vertical(text):\n"
                          "    swaps = {'above': 'below', 'below': 'above', "
                          "'top': 'bottom', 'bottom': 'top'}\n"
                          "    return ' '.join(swaps.get(word, word) for word in text.split())\n\n"
                          "ex.q1.check(swap_vertical)",
            reference=lambda: swap_vertical,
            wrong=lambda: [
                lambda text: text,  # no swap: the flipped caption is a lie
                naive_swap,
                lambda text: text.replace("above", "below"),  # one direction only
                lambda text: " ".join({"above": "below", "below": "above"}.get(w, w)
                                      for w in text.split()),  # forgets top/bottom
                lambda text: " ".join({"left": "right", "right": "left"}.get(w, w)
                                      for w in text.split()),  # the horizontal swap
            ],
        ),
        Exercise(
            name="q2",
            prompt="A function normalise(image) taking an RGB uint8 image to float32 values "
                   "in [0, 1].",
            checker=check_normalise,
            hints=["uint8 pixels run from 0 to 255.",
                   "Convert first, then divide: image.astype(np.float32) / 255."],
            solution_code="def normalise(image):\n    return image.astype(np.float32) / 255.0\n\n"
                          "ex.q2.check(normalise)",
            reference=lambda: normalise,
            wrong=lambda: [
                lambda image: image.astype(np.float32),  # still 0..255
                lambda image: image / 256,  # 255 -> 0.996
                lambda image: image // 255,  # integer division: only 0 and 1
                lambda image: image / 255.0,  # float64
            ],
        ),
        Exercise(
            name="q3",
            prompt="A function pad_or_truncate(token_ids, length) doing what TextVectorization's "
                   "output_sequence_length does: keep the first `length` ids, pad with 0 at the "
                   "end, return an int32 array.",
            checker=expect_function(pad_or_truncate, pad_cases),
            hints=["Padding id 0 goes after the tokens; a too-long list loses its tail.",
                   "np.array((list(token_ids) + [0] * length)[:length], dtype=np.int32)"],
            solution_code="def pad_or_truncate(token_ids, length):\n"
                          "    padded = list(token_ids) + [0] * length\n"
                          "    return np.array(padded[:length], dtype=np.int32)\n\n"
                          "ex.q3.check(pad_or_truncate)",
            reference=lambda: pad_or_truncate,
            wrong=lambda: [
                lambda ids, n: np.array(([0] * n + list(ids))[-n:], np.int32),  # pads in front
                lambda ids, n: np.array((list(ids) + [1] * n)[:n], np.int32),  # pads with [UNK]
                lambda ids, n: np.array((list(ids) + [0] * n)[-n:], np.int32),  # keeps the tail
                lambda ids, n: np.array(list(ids) + [0] * (n - len(ids)), np.int32),  # no cut
            ],
        ),
        Exercise(
            name="q4",
            prompt="How many positive labels are in the first batch of "
                   "make_dataset('match', 'relations', 'val', batch_size=32) (not shuffled: "
                   "val)?",
            checker=check_positives,
            hints=["Take one batch: (image_batch, token_ids), labels = next(iter(dataset)).",
                   "Labels are 0.0 or 1.0: int(labels.numpy().sum()) counts the 1s."],
            solution_code="dataset = make_dataset('match', 'relations', 'val', batch_size=32)\n"
                          "(image_batch, token_ids), labels = next(iter(dataset))\n"
                          "ex.q4.check(int(labels.numpy().sum()))",
            reference=first_batch_positives,
            wrong=lambda: [first_batch_positives() + 1, first_batch_positives() - 1, 32,
                           first_batch_positives() / 32],
        ),
    ])


def notebook_05() -> ExerciseSet:
    """Exercises of notebook 05: global batch size, the train-validation gap, the callback
    that restores the best weights, the learning rate of a cosine schedule."""
    from mmcourse.exercises import Incorrect

    def global_batch(per_replica_batch, replicas):
        return per_replica_batch * replicas

    batch_cases = [(32, 2), (64, 8), (16, 1), (8, 3)]

    history = {"accuracy": [0.61, 0.78, 0.90, 0.97], "val_accuracy": [0.60, 0.70, 0.72, 0.71],
               "loss": [0.66, 0.48, 0.29, 0.12], "val_loss": [0.67, 0.58, 0.57, 0.63]}

    def train_val_gap(history):
        return history["accuracy"][-1] - history["val_accuracy"][-1]

    gap_cases = [(history,), ({"accuracy": [0.5, 0.9], "val_accuracy": [0.5, 0.6]},),
                 ({"accuracy": [0.8], "val_accuracy": [0.85]},)]

    def check_callback(answer):
        if not isinstance(answer, str):
            raise Incorrect(f"answer with the callback's class name as a string, got "
                            f"{type(answer).__name__}.")
        name = answer.strip().removeprefix("keras.callbacks.")
        if name in ("ModelCheckpoint", "BackupAndRestore"):
            raise Incorrect(f"{name} writes files, but does not put the best weights back into "
                            "the model at the end of fit.")
        if name != "EarlyStopping":
            raise Incorrect(f"{answer!r} is not the callback that, with "
                            "restore_best_weights=True, ends training with the best epoch's "
                            "weights.")

    def cosine_at(initial, epochs, epoch):
        import math

        return initial * 0.5 * (1 + math.cos(math.pi * epoch / (epochs - 1)))

    return ExerciseSet("05", [
        Exercise(
            name="q1",
            prompt="A function global_batch(per_replica_batch, replicas): the batch one "
                   "synchronous MirroredStrategy step consumes.",
            checker=expect_function(global_batch, batch_cases),
            hints=["Every replica processes its own per-replica batch in the same step.",
                   "Multiply: per_replica_batch * replicas (strategy.num_replicas_in_sync)."],
            solution_code="def global_batch(per_replica_batch, replicas):\n"
                          "    return per_replica_batch * replicas\n\n"
                          "ex.q1.check(global_batch)",
            reference=lambda: global_batch,
            wrong=lambda: [lambda b, r: b, lambda b, r: b // r, lambda b, r: b + r],
        ),
        Exercise(
            name="q2",
            prompt="A function train_val_gap(history) returning the training accuracy minus "
                   "the validation accuracy at the last epoch of a History.history dict.",
            checker=expect_function(train_val_gap, gap_cases),
            hints=["history['accuracy'] and history['val_accuracy'] are lists, one value per "
                   "epoch; [-1] is the last.",
                   "history['accuracy'][-1] - history['val_accuracy'][-1]"],
            solution_code="def train_val_gap(history):\n"
                          "    return history['accuracy'][-1] - history['val_accuracy'][-1]\n\n"
                          "ex.q2.check(train_val_gap)",
            reference=lambda: train_val_gap,
            wrong=lambda: [
                lambda h: h["val_accuracy"][-1] - h["accuracy"][-1],  # sign flipped
                lambda h: h["accuracy"][0] - h["val_accuracy"][0],  # first epoch
                lambda h: max(h["accuracy"]) - max(h["val_accuracy"]),  # best, not last
                lambda h: h["loss"][-1] - h["val_loss"][-1],  # losses
            ],
        ),
        Exercise(
            name="q3",
            prompt="Which keras.callbacks class, given restore_best_weights=True, leaves the "
                   "model with the weights of its best validation epoch? Answer with its "
                   "class name as a string.",
            checker=check_callback,
            hints=["It watches val_loss and stops when it has not improved for `patience` "
                   "epochs.",
                   "keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)"],
            solution_code='ex.q3.check("EarlyStopping")',
            reference=lambda: "EarlyStopping",
            wrong=lambda: ["ModelCheckpoint", "BackupAndRestore", "ReduceLROnPlateau", 3],
        ),
        Exercise(
            name="q4",
            prompt="With mmcourse.callbacks.cosine_schedule(0.01, epochs=11) (no warm-up), "
                   "what learning rate does epoch 5 (counting from 0) get?",
            checker=expect_value(cosine_at(0.01, 11, 5), atol=1e-9),
            hints=["The cosine goes from the initial rate at epoch 0 to 0 at the last epoch, "
                   "epoch 10.",
                   "Halfway there: 0.01 * 0.5 * (1 + cos(pi * 5 / 10))."],
            solution_code="from mmcourse.callbacks import cosine_schedule\n"
                          "ex.q4.check(cosine_schedule(0.01, epochs=11)(5))",
            reference=lambda: cosine_at(0.01, 11, 5),
            wrong=lambda: [0.01, 0.0, cosine_at(0.01, 11, 6), 0.01 * 5 / 10 + 1e-4],
        ),
    ])


def notebook_04() -> ExerciseSet:
    """Exercises of notebook 04: fusion by product, the tensor-fusion features, and the
    parameter costs of bilinear and low-rank fusion."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 5))
    w_x, b_x = rng.normal(size=(4, 2)), rng.normal(size=2)
    w_y, b_y = rng.normal(size=(5, 2)), rng.normal(size=2)
    x1, y1 = rng.normal(size=(1, 2)), rng.normal(size=(1, 1))

    def fuse_multiply(x, y, w_x, b_x, w_y, b_y):
        return (x @ w_x + b_x) * (y @ w_y + b_y)

    def tensor_features(x, y):
        ones = np.ones((len(x), 1))
        x_1, y_1 = np.concatenate([ones, x], axis=1), np.concatenate([ones, y], axis=1)
        return np.einsum("bi,bj->bij", x_1, y_1).reshape(len(x), -1)

    return ExerciseSet("04", [
        Exercise(
            name="q1",
            prompt="A function fuse_multiply(x, y, w_x, b_x, w_y, b_y) returning the "
                   "element-wise product fusion (x W_x + b_x) ⊙ (y W_y + b_y) for batches "
                   "x (B, d_img) and y (B, d_txt).",
            checker=expect_function(fuse_multiply, [(x, y, w_x, b_x, w_y, b_y),
                                                    (x1, y1, w_x[:2], b_x, w_y[:1], b_y)]),
            hints=["Project each modality to the same width first: x @ w_x + b_x is (B, d_out).",
                   "Then multiply the two projections with *, element by element."],
            solution_code="def fuse_multiply(x, y, w_x, b_x, w_y, b_y):\n"
                          "    return (x @ w_x + b_x) * (y @ w_y + b_y)",
            reference=lambda: fuse_multiply,
            wrong=lambda: [
                lambda x, y, w_x, b_x, w_y, b_y: (x @ w_x + b_x) + (y @ w_y + b_y),  # sum
                lambda x, y, w_x, b_x, w_y, b_y: (x @ w_x) * (y @ w_y),  # no biases
                lambda x, y, w_x, b_x, w_y, b_y: np.concatenate([x, y], axis=1),
            ],
        ),
        Exercise(
            name="q2",
            prompt="A function tensor_features(x, y) returning, for batches x (B, d_img) and "
                   "y (B, d_txt), the flattened outer product [1; x] ⊗ [1; y] of tensor "
                   "fusion: shape (B, (d_img + 1) (d_txt + 1)), the 1 first in each vector.",
            checker=expect_function(tensor_features, [(x, y), (x1, y1)]),
            hints=["Prepend a column of ones: np.concatenate([np.ones((len(x), 1)), x], axis=1).",
                   "The outer product per example is np.einsum('bi,bj->bij', x_1, y_1); "
                   "reshape it to (B, -1)."],
            solution_code="def tensor_features(x, y):\n"
                          "    ones = np.ones((len(x), 1))\n"
                          "    x_1 = np.concatenate([ones, x], axis=1)\n"
                          "    y_1 = np.concatenate([ones, y], axis=1)\n"
                          "    return np.einsum('bi,bj->bij', x_1, y_1).reshape(len(x), -1)",
            reference=lambda: tensor_features,
            wrong=lambda: [
                lambda x, y: np.einsum("bi,bj->bij", x, y).reshape(len(x), -1),  # no 1s
                lambda x, y: np.concatenate([x, y], axis=1),
                lambda x, y: tensor_features(y, x),  # transposed order
            ],
        ),
        Exercise(
            name="q3",
            prompt="The number of parameters of bilinear (tensor) fusion, TensorFusion, for "
                   "d_img = 64, d_txt = 32 and d_out = 16.",
            checker=expect_value(((64 + 1) * (32 + 1) + 1) * 16),
            hints=["The outer product [1; x] ⊗ [1; y] has (d_img + 1)(d_txt + 1) entries.",
                   "A linear map from that many inputs to d_out outputs, with biases: "
                   "(inputs + 1) * d_out."],
            solution_code="ex.q3.check(((64 + 1) * (32 + 1) + 1) * 16)  # 34,336\n"
                          "# check: mmcourse.fusion.parameter_count('bilinear', 64, 32, 16)",
            reference=lambda: 34336,
            wrong=lambda: [64 * 32 * 16, (64 * 32 + 1) * 16, (64 + 32 + 2) * 16],
        ),
        Exercise(
            name="q4",
            prompt="The number of parameters of low-rank fusion, LowRankFusion, for the same "
                   "d_img = 64, d_txt = 32, d_out = 16 and rank r = 4.",
            checker=expect_value(4 * (64 + 1) * 16 + 4 * (32 + 1) * 16 + 4 + 16),
            hints=["Each of the r factors maps [x; 1] to d_out and [y; 1] to d_out: "
                   "(d_img + 1) d_out + (d_txt + 1) d_out weights.",
                   "Add the r rank weights lambda_i and the d_out biases."],
            solution_code="ex.q4.check(4 * (64 + 1) * 16 + 4 * (32 + 1) * 16 + 4 + 16)  # 6,292",
            reference=lambda: 6292,
            wrong=lambda: [34336, 4 * (64 + 32) * 16, 4 * (64 + 32 + 2) * 16],
        ),
        Exercise(
            name="q5",
            prompt="The article's model in miniature, repaired: a two-input Keras model (images "
                   "(64, 64, 3), token ids (12,)) with Conv2D layers on the image, an Embedding "
                   "before an LSTM on the text, Concatenate fusion and a Dense(1, sigmoid) "
                   "output, in at most 50,000 parameters.",
            checker=expect_model(["Conv2D", "Embedding", "LSTM", "Concatenate", "Dense"],
                                 output_shape=(1,), max_params=50_000, n_inputs=2),
            hints=["Text: keras.Input((12,), dtype='int32') -> Embedding(vocab, 16, "
                   "mask_zero=True) -> LSTM(16). The LSTM needs the Embedding's 3-D output.",
                   "Image: Conv2D(16, 3, strides=2, activation='relu') twice, then "
                   "GlobalAveragePooling2D instead of Flatten keeps the parameters small."],
            solution_code=_MINI_ARTICLE_MODEL,
            reference=lambda: _mini_article_model(),
            wrong=lambda: [
                _mini_article_model(pooling="Flatten"),  # the article's Flatten: too many params
                _mini_article_model(outputs=2),
                _mini_article_model(text=False),
            ],
        ),
    ])


_MINI_ARTICLE_MODEL = """\
image = keras.Input((64, 64, 3), name="image")
token_ids = keras.Input((12,), dtype="int32", name="token_ids")
x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(image)
x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
x = keras.layers.GlobalAveragePooling2D()(x)
y = keras.layers.Embedding(64, 16, mask_zero=True)(token_ids)
y = keras.layers.LSTM(16)(y)
z = keras.layers.Concatenate()([x, y])
z = keras.layers.Dense(32, activation="relu")(z)
model = keras.Model([image, token_ids], keras.layers.Dense(1, activation="sigmoid")(z))
ex.q5.check(model)"""


def _mini_article_model(pooling="GlobalAveragePooling2D", outputs=1, text=True):
    """The reference answer to notebook 04's q5 (the code in _MINI_ARTICLE_MODEL), and its
    wrong variants for the tests."""
    import keras

    image = keras.Input((64, 64, 3), name="image")
    token_ids = keras.Input((12,), dtype="int32", name="token_ids")
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(image)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = getattr(keras.layers, pooling)()(x)
    inputs, features = [image], [x]
    if text:
        y = keras.layers.Embedding(64, 16, mask_zero=True)(token_ids)
        inputs.append(token_ids)
        features.append(keras.layers.LSTM(16)(y))
    z = keras.layers.Concatenate()(features) if len(features) > 1 else x
    z = keras.layers.Dense(32, activation="relu")(z)
    activation = "sigmoid" if outputs == 1 else "softmax"
    return keras.Model(inputs, keras.layers.Dense(outputs, activation=activation)(z))
