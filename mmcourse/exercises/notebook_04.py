"""Exercises of notebook 04 (fusion): product fusion, tensor-fusion features, bilinear and low-rank
costs, the article's model, and an experiment: a fusion trained on a third of the budget.
"""

from __future__ import annotations

import numpy as np

from mmcourse.exercises import (
    Exercise,
    ExerciseSet,
    Prediction,
    expect_model,
    expect_value,
    function_exercise,
)

#: q6: the budget (epochs of the 4,000 attributes training pairs, batch 64) and the test
#: accuracy the checker wants within it (section 4 trains 15 epochs).
Q6_EPOCHS = 5
Q6_MIN_ACCURACY = 0.8
_Q6_STEPS = Q6_EPOCHS * -(-4000 // 64)


def test_accuracy(model) -> float:
    """q6: the match accuracy of ``model`` on the 1,000 attributes test pairs."""
    from mmcourse.data.pipeline import dataset_from_arrays
    from mmcourse.train.tasks import load_split

    images, token_ids, labels = load_split("match", "attributes", "test")
    probabilities = np.asarray(model.predict(dataset_from_arrays(
        images, token_ids, labels, batch_size=250), verbose=0)).reshape(-1)
    return float(np.mean((probabilities > 0.5) == (labels > 0.5)))


def _q6_model(epochs=Q6_EPOCHS):
    """q6's reference: concatenation trained for the budget (cached: it takes seconds)."""
    if epochs not in _Q6_MODELS:
        from mmcourse.train.tasks import train

        _Q6_MODELS[epochs] = train("match", "concat", epochs=epochs, seed=0, keep_model=True,
                                   log=None, validate=False)["model"]
    return _Q6_MODELS[epochs]


_Q6_MODELS: dict = {}


def _over_budget_model():
    """A wrong answer to q6: a model whose optimiser has taken more steps than the budget."""
    from mmcourse.matcher.model import build_model

    model = build_model("match", "concat")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(_Q6_STEPS + 63)
    return model


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
        x_1 = np.concatenate([ones, x], axis=1)
        y_1 = np.concatenate([ones, y], axis=1)
        return np.einsum("bi,bj->bij", x_1, y_1).reshape(len(x), -1)

    from mmcourse.exercises import Incorrect

    def check_budget(model):
        if not (hasattr(model, "predict") and hasattr(model, "optimizer")):
            raise Incorrect(f"pass the trained Keras model (result['model']), got "
                            f"{type(model).__name__}.")
        if len(model.inputs) != 2:
            raise Incorrect(f"the model has {len(model.inputs)} input(s); a fusion model takes "
                            f"the image and the token ids.")
        steps = int(model.optimizer.iterations) if model.optimizer is not None else 0
        if steps > _Q6_STEPS:
            raise Incorrect(f"the optimiser took {steps} steps; the budget is {Q6_EPOCHS} epochs "
                            f"of 63 batches, {_Q6_STEPS} steps.")
        accuracy = test_accuracy(model)
        if accuracy < Q6_MIN_ACCURACY:
            raise Incorrect(f"the checker measures a test accuracy of {accuracy:.3f}; the bound "
                            f"is at least {Q6_MIN_ACCURACY}. Did it train for {Q6_EPOCHS} "
                            f"epochs, on both modalities?")
        return accuracy

    return ExerciseSet("04", [
        function_exercise(
            name="q1",
            prompt="A function fuse_multiply(x, y, w_x, b_x, w_y, b_y) returning the "
                   "element-wise product fusion (x W_x + b_x) ⊙ (y W_y + b_y) for batches "
                   "x (B, d_img) and y (B, d_txt).",
            function=fuse_multiply,
            cases=[(x, y, w_x, b_x, w_y, b_y),
                   (x1, y1, w_x[:2], b_x, w_y[:1], b_y)],
            hints=["Project each modality to the same width first: x @ w_x + b_x is (B, d_out).",
                   "Then multiply the two projections with *, element by element."],
            wrong=lambda: [
                lambda x, y, w_x, b_x, w_y, b_y: (x @ w_x + b_x) + (y @ w_y + b_y),  # sum
                lambda x, y, w_x, b_x, w_y, b_y: (x @ w_x) * (y @ w_y),  # no biases
                lambda x, y, w_x, b_x, w_y, b_y: np.concatenate([x, y], axis=1),
                lambda x, y, w_x, b_x, w_y, b_y: None,  # forgot the return
            ],
        ),
        function_exercise(
            name="q2",
            prompt="A function tensor_features(x, y) returning, for batches x (B, d_img) and "
                   "y (B, d_txt), the flattened outer product [1; x] ⊗ [1; y] of tensor "
                   "fusion: shape (B, (d_img + 1) (d_txt + 1)), the 1 first in each vector.",
            function=tensor_features,
            cases=[(x, y), (x1, y1)],
            hints=["Prepend a column of ones: np.concatenate([np.ones((len(x), 1)), x], axis=1).",
                   "The outer product per example is np.einsum('bi,bj->bij', x_1, y_1); "
                   "reshape it to (B, -1)."],
            wrong=lambda: [
                lambda x, y: np.einsum("bi,bj->bij", x, y).reshape(len(x), -1),  # no 1s
                lambda x, y: np.concatenate([x, y], axis=1),
                lambda x, y: tensor_features(y, x),  # transposed order
                lambda x, y: np.einsum("bi,bj->bij", x, y),  # not flattened
                lambda x, y: None,  # forgot the return
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
                          "# check: mmcourse.matcher.fusion.parameter_count('bilinear', 64, 32, 16)",
            reference=lambda: 34336,
            wrong=lambda: [64 * 32 * 16, (64 * 32 + 1) * 16, (64 + 32 + 2) * 16,
                           (64 + 1) * (32 + 1) * 16, None],  # ... no biases
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
            wrong=lambda: [34336, 4 * (64 + 32) * 16, 4 * (64 + 32 + 2) * 16,
                           4 * (64 + 1) * 16 + 4 * (32 + 1) * 16 + 16, None],  # ... no λ
        ),
        Exercise(
            name="q5",
            prompt="The article's model in miniature, repaired: a two-input Keras model (images "
                   "(64, 64, 3), token ids (12,)) with Conv2D layers on the image, an Embedding "
                   "before an LSTM on the text, Concatenate fusion and a Dense(1, sigmoid) "
                   "output, in at most 50,000 parameters.",
            checker=expect_model(["Conv2D", "Embedding", "LSTM", "Concatenate", "Dense"],
                                 output_shape=(1,), max_params=50_000, n_inputs=2,
                                 output_activation="sigmoid", fed_by={"LSTM": "Embedding"}),
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
                _mini_article_model(recurrent=False),  # averages the embeddings: no LSTM
                _mini_article_model(activation=None),  # a linear output, no sigmoid
                _mini_article_model(activation="relu"),
                _mini_article_model(unused_embedding=True),  # the seed's bug: the LSTM reads ids
                None,
            ],
        ),
        Exercise(
            name="q6",
            prompt=f"Experiment. Section 4 trains every fusion for 15 epochs. Predict first: "
                   f"which fusion gets furthest in a third of that, and to what test accuracy? "
                   f"Record that accuracy with ex.q6.predict(...), then train your fusion with "
                   f"train('match', fusion, epochs={Q6_EPOCHS}, seed=0, keep_model=True, "
                   f"log=None, validate=False) and pass result['model']. The checker reads its "
                   f"optimiser's step count (at most {Q6_EPOCHS} epochs) and scores it on the "
                   f"test pairs itself: the bound is a test accuracy of at least "
                   f"{Q6_MIN_ACCURACY}.",
            checker=check_budget,
            hints=["Look at the learning curves of section 4: which fusion's validation "
                   "accuracy rises first?",
                   "fast = train('match', 'concat', epochs=5, seed=0, keep_model=True, "
                   "log=None, validate=False); fast['model']"],
            prediction=Prediction(
                f"what test accuracy does your fusion reach after {Q6_EPOCHS} epochs?"),
            solution_code="ex.q6.predict(0.8)\n" +
            "fast = train('match', 'concat', epochs=5, seed=0, keep_model=True, "
                          "log=None, validate=False)\n"
                          "print(round(fast['test_accuracy'], 3))\n"
                          "ex.q6.check(fast['model'])",
            reference=_q6_model,
            wrong=lambda: [_q6_model(epochs=1),  # too short to learn
                           _over_budget_model(),
                           0.877,  # the accuracy typed in: not a measurement
                           {"test_accuracy": 0.877}, None],
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


def _mini_article_model(pooling="GlobalAveragePooling2D", outputs=1, text=True,
                        recurrent=True, activation="sigmoid", unused_embedding=False):
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
        text_layer = keras.layers.LSTM(16) if recurrent else keras.layers.GlobalAveragePooling1D()
        if unused_embedding:  # the LSTM reads the ids as one float feature per step
            features.append(keras.layers.GlobalAveragePooling1D()(y))
            y = keras.layers.Reshape((12, 1))(keras.layers.Rescaling(1.0)(token_ids))
        features.append(text_layer(y))
    z = keras.layers.Concatenate()(features) if len(features) > 1 else x
    z = keras.layers.Dense(32, activation="relu")(z)
    activation = activation if outputs == 1 else "softmax"
    return keras.Model(inputs, keras.layers.Dense(outputs, activation=activation)(z))
