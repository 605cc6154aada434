"""Exercises of notebook 02 (CNN math): dense layer, same padding, output shapes, parameters,
and an experiment: a stack of layers designed to a receptive field.
"""

from __future__ import annotations

import numpy as np

from mmcourse.exercises import Exercise, ExerciseSet, Prediction, expect_function, expect_value

#: q5: the receptive field to reach, with at most MAX_CONVS 3x3 convolutions.
MIN_RECEPTIVE_FIELD = 16
MAX_CONVS = 3

_Q5_SOLUTION = """\
design = keras.Sequential([
    keras.Input((32, 32, 1)),
    keras.layers.Conv2D(8, 3, padding="same"),
    keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(8, 3, padding="same"),
    keras.layers.MaxPooling2D(2),
    keras.layers.Conv2D(8, 3, padding="same"),
])
print(scratch.receptive_field([(3, 1), (2, 2), (3, 1), (2, 2), (3, 1)]))  # 18
ex.q5.check(design)"""


def _design(*layers):
    """A Sequential model on (32, 32, 1) inputs from q5's shorthand: "c" a 3x3 Conv2D,
    "p" a 2x2 MaxPooling2D, "c5" a 5x5 Conv2D, "c3s2" a 3x3 Conv2D of stride 2."""
    import keras

    made = {"c": lambda: keras.layers.Conv2D(4, 3, padding="same"),
            "p": lambda: keras.layers.MaxPooling2D(2),
            "c5": lambda: keras.layers.Conv2D(4, 5, padding="same"),
            "c3s2": lambda: keras.layers.Conv2D(4, 3, strides=2, padding="same")}
    return keras.Sequential([keras.Input((32, 32, 1)), *(made[name]() for name in layers)])


def notebook_02() -> ExerciseSet:
    """Exercises of notebook 02 (CNN math): dense layer, padding, shapes, parameters,
    receptive fields."""
    from mmcourse import scratch
    from mmcourse.exercises import Incorrect, NotAttempted, ____

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
            if result is ____:  # the starter function, not filled in yet
                raise NotAttempted
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

    def check_design(model):
        if not (hasattr(model, "layers") and hasattr(model, "count_params")):
            raise Incorrect(f"pass the Keras model you designed, got {type(model).__name__}.")
        stack, convs = [], 0
        for layer in model.layers:
            config, kind = layer.get_config(), type(layer).__name__
            if kind == "Conv2D":
                if tuple(config["kernel_size"]) != (3, 3) or tuple(config["strides"]) != (1, 1) \
                        or tuple(config["dilation_rate"]) != (1, 1):
                    raise Incorrect(f"{layer.name} has kernel {tuple(config['kernel_size'])}, "
                                    f"strides {tuple(config['strides'])}: use only 3x3 "
                                    f"convolutions of stride 1 (no dilation).")
                convs += 1
                stack.append((3, 1))
            elif kind == "MaxPooling2D":
                if tuple(config["pool_size"]) != (2, 2) or tuple(config["strides"]) != (2, 2):
                    raise Incorrect(f"{layer.name} pools {tuple(config['pool_size'])} with "
                                    f"strides {tuple(config['strides'])}: use MaxPooling2D(2).")
                stack.append((2, 2))
            elif kind != "InputLayer":
                raise Incorrect(f"{layer.name} is a {kind}: use only Conv2D and MaxPooling2D.")
        if convs > MAX_CONVS:
            raise Incorrect(f"the model has {convs} Conv2D layers; use at most {MAX_CONVS}.")
        field = scratch.receptive_field(stack) if stack else 1
        if field < MIN_RECEPTIVE_FIELD:
            raise Incorrect(f"the checker measures a receptive field of {field} pixels; the "
                            f"bound is at least {MIN_RECEPTIVE_FIELD}. Where does a pooling "
                            f"layer multiply the most?")
        return stack.count((2, 2))  # its pooling layers

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
                          "    return 1 / (1 + np.exp(-z))\n\n"
                          "ex.q1.check(my_dense)",
            reference=lambda: dense_reference,
            wrong=lambda: [lambda x, kernel, bias: 1 / (1 + np.exp(-(x @ kernel))),
                           lambda x, kernel, bias: x @ kernel + bias,
                           lambda x, kernel, bias: 1 / (1 + np.exp(-(kernel.T @ x + bias))),
                           lambda x, kernel, bias: np.tanh(x @ kernel + bias),  # tanh
                           lambda x, kernel, bias: None],
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
                          "    return total // 2, total - total // 2\n\n"
                          "ex.q2.check(same_padding_amounts)",
            reference=lambda: scratch.same_padding,
            wrong=lambda: [
                lambda size, k, stride: ((k - 1) // 2, (k - 1) // 2),  # ignores the stride
                lambda size, k, stride: scratch.same_padding(size, k, stride)[::-1],  # extra first
                lambda size, k, stride: (  # forgets that the total can't be negative
                    ((-(-size // stride) - 1) * stride + k - size) // 2,
                    ((-(-size // stride) - 1) * stride + k - size)
                    - ((-(-size // stride) - 1) * stride + k - size) // 2),
                lambda size, k, stride: None,  # forgot the return
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
                          "output_shape = (second, second, 32)\n"
                          "ex.q3.check(output_shape)",
            reference=lambda: (15, 15, 32),
            wrong=lambda: [(14, 14, 32), (16, 16, 32), (15, 15, 16), (30, 30, 32), (15, 14, 32),
                           (14, 15, 32), (None, 15, 15, 32), (15, 15), None],
        ),
        Exercise(
            name="q4",
            prompt="How many parameters does Conv2D(32, (3, 3)) have when its input has 16 "
                   "channels?",
            checker=check_params,
            hints=["Each of the 32 filters spans 3 x 3 positions of all 16 input channels.",
                   "Don't forget one bias per filter."],
            solution_code="conv_params = 3 * 3 * 16 * 32 + 32  # kernel + bias = 4640\n"
                          "ex.q4.check(conv_params)",
            reference=lambda: 3 * 3 * 16 * 32 + 32,
            wrong=lambda: [3 * 3 * 16 * 32, 3 * 3 * 32 + 32, 3 * 3 * 16 + 16, 4641, None, "4640"],
        ),
        Exercise(
            name="q5",
            prompt="Experiment. Design a Keras model on (32, 32, 1) inputs from 3x3 Conv2D layers "
                   "(stride 1) and MaxPooling2D(2) layers only, with at most "
                   f"{MAX_CONVS} Conv2D, whose receptive field is at least "
                   f"{MIN_RECEPTIVE_FIELD} pixels. Predict first how many pooling layers it "
                   "needs and where they go; measure your designs with "
                   "scratch.receptive_field, and pass the model. The checker reads its layers "
                   "and measures the receptive field itself.",
            checker=check_design,
            hints=["Three 3x3 convolutions alone see 7 pixels; each layer after a pooling moves "
                   "in steps of 2 input pixels, after two poolings in steps of 4.",
                   "Put a MaxPooling2D(2) between the convolutions: conv, pool, conv, pool, "
                   "conv."],
            prediction=Prediction(
                "how many MaxPooling2D layers does it take?",
                unit=" pooling layers"),
            solution_code="ex.q5.predict(2)\n" + _Q5_SOLUTION,
            reference=lambda: _design("c", "p", "c", "p", "c"),
            wrong=lambda: [_design("c", "c", "c"),  # 7
                           _design("c", "p", "c"),  # 8, the stack of section 5
                           _design("c", "c", "p", "c"),  # 10: pooling too late
                           _design("c", "c", "c", "c", "c", "c", "c", "c"),  # 17 but 8 convs
                           _design("c5", "p", "c5", "p", "c5"),  # 5x5 kernels
                           _design("c3s2", "c3s2", "c3s2"),  # strided convolutions
                           18, None],
        ),
    ])
