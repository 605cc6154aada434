"""The exercise API (mmcourse.exercises) itself."""

import json

import numpy as np
import pytest

from mmcourse.exercises import (
    Exercise,
    ExerciseSet,
    Feedback,
    Incorrect,
    Prediction,
    ____,
    compare,
    expect_function,
    expect_model,
    expect_value,
    function_exercise,
    record,
    solution_from,
)


def make_exercise(checker, hints=("first hint", "second hint")):
    return Exercise("Question 1", "prompt", checker, list(hints), "answer = 3",
                    reference=lambda: 3, wrong=lambda: [4])


def test_placeholder_anywhere_in_the_answer_is_not_attempted():
    exercise = make_exercise(expect_value(3))
    for answer in (____, [1, ____], (____,), {"a": ____}):
        assert exercise.check(answer).status == "not attempted"
    assert exercise.check().status == "not attempted"


def test_placeholder_lets_a_starter_cell_run():
    assert ____(1, 2).shape is ____
    assert repr(____) == "____"


def test_value_check_right_wrong_and_wrong_kind():
    exercise = make_exercise(expect_value([1.0, 2.0], atol=1e-3))
    assert exercise.check(np.array([1.0, 2.0005])).correct
    wrong = exercise.check([1.0, 3.0])
    assert wrong.status == "incorrect"
    assert "index (1,)" in wrong.message and "expected 2" in wrong.message
    assert "shape (3,)" in exercise.check([1, 2, 3]).message
    big = make_exercise(expect_value([10.0, 0.0])).check([10.0, 1.0]).message
    assert "at index (1,) it is 1, expected 0" in big  # the worst difference, not value
    assert "number or an array, got str" in exercise.check("1, 2").message
    assert "got function" in exercise.check(lambda: 1).message
    assert "number or an array, got NoneType" in exercise.check(None).message


def test_shape_and_string_expectations():
    compare((2, 3), (2, 3))
    with pytest.raises(Exception, match="expected the shape"):
        compare((3, 2), (2, 3))
    with pytest.raises(Exception, match="expected 'relu'"):
        compare("tanh", "relu")


def test_function_check_reports_the_failing_case():
    checker = expect_function(lambda x: x * 2, [(np.arange(3.0),), (5.0,)])
    exercise = make_exercise(checker)
    assert exercise.check(lambda x: x + x).correct
    assert "result for (5.0)" in exercise.check(lambda x: x * 2 if np.ndim(x) else 0.0).message
    assert "raised ZeroDivisionError" in exercise.check(lambda x: 1 / 0).message
    wrong = exercise.check(lambda x: x * 3).message  # the learner's value, then the expected
    assert "at index (2,) it is 6, expected 4" in wrong
    long_text = "x" * 50
    message = make_exercise(expect_function(len, [(long_text,)])).check(lambda s: 0).message
    assert f"result for ('{'x' * 36}...)" in message  # long arguments shortened to 40
    message = make_exercise(expect_function(len, [("x" * 38,)])).check(lambda s: 0).message
    assert f"result for ('{'x' * 38}')" in message  # 40 characters: shown whole
    assert exercise.check(lambda x: ____).status == "not attempted"
    assert "no parentheses" in exercise.check(3.0).message


def test_model_check_inspects_layers_shape_and_params():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    assert make_exercise(expect_model(["Dense"], output_shape=(1,), params=49)).check(model).correct
    assert "needs ['Conv2D']" in make_exercise(expect_model(["Conv2D"])).check(model).message
    assert "output shape is (1,)" in make_exercise(expect_model(output_shape=(2,))).check(model).message
    assert "at most 10" in make_exercise(expect_model(max_params=10)).check(model).message
    assert "expected a Keras model" in make_exercise(expect_model()).check([1]).message
    layers_only = type("LayersOnly", (), {"layers": []})()
    assert "expected a Keras model" in make_exercise(expect_model()).check(layers_only).message
    assert make_exercise(expect_model(max_params=49)).check(model).correct  # "at most" 49
    assert "expected 2 (pass a list" in make_exercise(expect_model(n_inputs=2)).check(model).message


def test_model_check_needs_every_listed_layer_type():
    import keras

    model = keras.Sequential([keras.Input((6, 4)), keras.layers.LSTM(3), keras.layers.Dense(1)])
    assert make_exercise(expect_model(["LSTM", "Dense"])).check(model).correct
    for layer_types, missing in ((["Dense", "Conv2D"], "['Conv2D']"),
                                 (["LSTM", "Embedding", "Dense"], "['Embedding']"),
                                 (["Dense", "LSTM", "Concatenate", "Conv2D"],
                                  "['Concatenate', 'Conv2D']")):
        feedback = make_exercise(expect_model(layer_types)).check(model)
        assert feedback.status == "incorrect" and f"still needs {missing}" in feedback.message
    assert make_exercise(expect_model(params=4 * (4 * 3 + 3 * 3 + 3) + 3 + 1)).check(model).correct
    assert "has 100 parameters; expected 99" in \
        make_exercise(expect_model(params=99)).check(model).message


def test_function_check_with_a_dtype():
    checker = expect_function(lambda x: np.asarray(x, np.float32) * 2, [(np.arange(3),)],
                              dtype=np.float32)
    exercise = make_exercise(checker)
    assert exercise.check(lambda x: x.astype(np.float32) * 2).correct
    assert "dtype float64; return dtype float32 (.astype(np.float32))" in \
        exercise.check(lambda x: x * 2.0).message
    assert "is a list; return a NumPy array of dtype float32" in \
        exercise.check(lambda x: (x * 2.0).tolist()).message
    assert "wrong values" in exercise.check(lambda x: (x * 3).astype(np.float32)).message
    import tensorflow as tf

    assert exercise.check(lambda x: tf.cast(x, tf.float32) * 2).correct  # a tensor will do
    assert "dtype float64" in exercise.check(lambda x: tf.cast(x, tf.float64) * 2).message
    assert "got NoneType" in exercise.check(lambda x: None).message
    mask = make_exercise(expect_function(lambda x: x != 0, [(np.array([0, 2]),)], dtype=bool))
    assert mask.check(lambda x: x > 0).correct
    assert "dtype int64; return dtype bool" in mask.check(lambda x: (x > 0).astype(np.int64)).message


def test_hints_and_solution():
    exercise = make_exercise(expect_value(3))
    assert "first hint" in str(exercise.hint()) and ".hint(2)" in str(exercise.hint())
    assert "more" not in str(exercise.hint(2))
    with pytest.raises(ValueError, match="hints 1 to 2, got n=3"):
        exercise.hint(3)
    with pytest.raises(ValueError, match="hints 1 to 2, got n=0"):
        exercise.hint(0)
    with pytest.raises(TypeError, match="must be an int"):
        exercise.hint("2")
    assert "answer = 3" in exercise.solution()._repr_markdown_()


def test_a_solution_written_once_is_its_reference_source_then_the_check():
    def reference():  # indented, as the references inside notebook_NN() are
        values = [1, 2]
        return sum(values)

    expected = ("def reference():  # indented, as the references inside notebook_NN() are\n"
                "    values = [1, 2]\n"
                "    return sum(values)\n\n\n"
                "ex.q1.check(reference)")
    assert solution_from(reference, "ex.q1.check(reference)") == expected
    assert solution_from(reference, "ex.q1.check(reference)\n", imports="import math\n") == \
        "import math\n\n\n" + expected
    namespace = {}
    exec(solution_from(reference, ""), namespace)  # the code shown runs as it is
    assert namespace["reference"]() == 3


def test_a_function_exercise_checks_shows_and_solves_with_its_one_function():
    """``function_exercise`` (issue 26): the function is the checker's reference, the right
    answer and the solution shown, which ends by checking it under the exercise's name."""
    def halve(x):
        return np.asarray(x, np.float32) / 2

    exercise = function_exercise(name="q7", prompt="halve x", function=halve,
                                 cases=[(np.array([2, 4]),), (np.array([1]),)], dtype=np.float32,
                                 imports="import numpy as np", hints=["x / 2"], wrong=list)
    assert exercise.solution_code == ("import numpy as np\n\n\n"
                                      "def halve(x):\n    return np.asarray(x, np.float32) / 2"
                                      "\n\n\nex.q7.check(halve)")
    assert exercise.reference() is halve
    assert exercise.check(lambda x: (x * 0.5).astype(np.float32)).status == "correct"
    assert exercise.check(lambda x: x * 0.5).status == "incorrect"  # float64: dtype checked
    assert exercise.check(lambda x: np.float32(x) / 3).status == "incorrect"
    assert exercise.hints == ["x / 2"] and exercise.prompt == "halve x"


def test_feedback_renders_as_markdown_and_text():
    feedback = Feedback("correct", "well done.")
    assert str(feedback) == "Correct: well done."
    assert 'color:#2e7d32' in feedback._repr_markdown_()
    assert bool(feedback) and not bool(Feedback("incorrect", "no"))
    with pytest.raises(AttributeError):  # a verdict cannot be edited after the check
        feedback.status = "incorrect"


def test_exercise_set_numbers_its_questions():
    first, second = make_exercise(expect_value(1)), make_exercise(expect_value(2))
    exercises = ExerciseSet("00", [first, second])
    assert exercises.q1 is first and exercises.q2 is second and len(exercises) == 2
    assert list(exercises) == [first, second]


def test_a_tensorshape_answer_compares_as_a_tuple():
    import tensorflow as tf

    compare(tf.zeros((2, 3)).shape, (2, 3))


def test_model_check_output_activation_and_what_feeds_a_layer():
    import keras

    token_ids = keras.Input((6,), dtype="int32")
    embedded = keras.layers.Embedding(20, 4, mask_zero=True)(token_ids)

    def model(sequence, activation="sigmoid"):
        states = keras.layers.LSTM(3)(sequence)
        return keras.Model(token_ids, keras.layers.Dense(1, activation=activation)(states))

    checker = expect_model(["LSTM"], output_activation="sigmoid", fed_by={"LSTM": "Embedding"})
    assert make_exercise(checker).check(model(embedded)).correct  # the mask op is no input
    linear = make_exercise(checker).check(model(embedded, activation=None)).message
    assert "applies linear; the output needs activation='sigmoid'" in linear
    assert "applies relu" in make_exercise(checker).check(model(embedded, "relu")).message
    floats = keras.layers.Reshape((6, 1))(keras.layers.Rescaling(1.0)(token_ids))
    assert "takes its input from ['reshape" in make_exercise(checker).check(model(floats)).message
    after = keras.layers.Dropout(0.1)(embedded)  # something between them
    assert "output of the Embedding layer" in make_exercise(checker).check(model(after)).message
    raw = keras.Input((6, 1))
    direct = keras.Model(raw, keras.layers.Dense(1, "sigmoid")(keras.layers.LSTM(3)(raw)))
    assert "from the model input" in make_exercise(checker).check(direct).message


def make_experiment(prediction):
    """An experiment whose checker measures twice the answer (its return value)."""

    def checker(answer):
        if answer < 0:
            raise Incorrect("a negative answer measures nothing.")
        return 2 * answer

    exercise = Exercise("q4", "prompt", checker, ["hint"], "ex.q4.check(1)",
                        reference=lambda: 1, wrong=lambda: [-1], prediction=prediction)
    ExerciseSet("07", [Exercise("q1", "p", expect_value(1), ["h"], "", lambda: 1, lambda: []),
                       Exercise("q2", "p", expect_value(1), ["h"], "", lambda: 1, lambda: []),
                       Exercise("q3", "p", expect_value(1), ["h"], "", lambda: 1, lambda: []),
                       exercise])
    return exercise


def test_prediction_is_compared_with_the_measurement_and_recorded(tmp_path, monkeypatch):
    path = tmp_path / "record.jsonl"
    monkeypatch.setenv(record.RECORD_VARIABLE, str(path))
    exercise = make_experiment(Prediction("how many times larger?", unit="x"))
    assert str(exercise.check(1.5)) == ("Correct: well done. No prediction recorded "
                                        "(ex.q4.predict(...) before the experiment).")
    assert str(exercise.predict(____)) == ("Not attempted: replace `____` with your "
                                           "prediction: how many times larger?")
    assert str(exercise.predict(4)) == ("Prediction recorded: you predicted 4x. Now run the "
                                        "experiment and check it.")
    assert str(exercise.check(1.55)) == ("Correct: well done. You predicted 4x; the "
                                         "measurement is 3.1x.")
    wrong = exercise.check(-1)  # a prediction never makes a wrong answer right
    assert str(wrong) == ("Incorrect: a negative answer measures nothing. You predicted 4x; "
                          "the measurement comes with a correct answer.")
    assert str(exercise.check(____)) == "Not attempted: replace `____` with your answer to q4."
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"notebook": "07", "question": "q4", "status": "correct",
         "message": "well done. No prediction recorded (ex.q4.predict(...) before the "
                    "experiment).", "prediction": None, "measurement": 3.0},
        {"notebook": "07", "question": "q4", "status": "predicted", "prediction": 4.0},
        {"notebook": "07", "question": "q4", "status": "correct",
         "message": "well done. You predicted 4x; the measurement is 3.1x.",
         "prediction": 4.0, "measurement": 3.1},
        {"notebook": "07", "question": "q4", "status": "incorrect",
         "message": "a negative answer measures nothing. You predicted 4x; the measurement "
                    "comes with a correct answer.", "prediction": 4.0, "measurement": None},
        {"notebook": "07", "question": "q4", "status": "not attempted",
         "message": "replace `____` with your answer to q4."},
    ]
    assert record.read_predictions(path) == [lines[1]]
    assert exercise.check(0.406).message == ("well done. You predicted 4x; the measurement "
                                             "is 0.812x.")  # three significant digits
    with path.open("a", encoding="utf-8") as file:  # a line cut short, and one not a record
        file.write('{"notebook": "07", "question": "q4", "status": "pre\n[4]\n')
    assert record.read_predictions(path) == [lines[1]]
    assert [entry["status"] for entry in record.read(path)] == \
        ["correct", "correct", "incorrect", "not attempted", "correct"]  # no prediction


def test_a_choice_prediction_and_a_measure_from_the_answer():
    exercise = make_experiment(Prediction("which grows?", choices=("left", "right"),
                                          measure=lambda answer: "right" if answer else "left"))
    assert exercise.predict(" LEFT ").message.startswith('you predicted "left".')
    assert exercise.check(3).message == ('well done. You predicted "left"; the measurement '
                                         'is "right".')
    assert exercise.check(0).message == ('well done. You predicted "left"; the measurement '
                                         'is "left".')


def test_predict_rejects_a_value_of_the_wrong_kind():
    number = make_experiment(Prediction("how many times larger?", unit="x"))
    with pytest.raises(TypeError, match=r'takes a number for "how many times larger\?", got '
                                        r"str '4x'"):
        number.predict("4x")
    with pytest.raises(TypeError, match="got bool True"):
        number.predict(True)
    with pytest.raises(ValueError, match="takes a finite number"):
        number.predict(float("nan"))
    choice = make_experiment(Prediction("which grows?", choices=("left", "right")))
    with pytest.raises(ValueError, match=r"takes one of \['left', 'right'\] for \"which "
                                         r"grows\?\", got 'up'"):
        choice.predict("up")
    assert choice.predicted is None and number.predicted is None  # nothing kept
    plain = make_exercise(expect_value(3))
    with pytest.raises(ValueError, match="Question 1 asks for no prediction"):
        plain.predict(3)
    assert plain.check(3).message == "well done."  # no prediction sentence without one
