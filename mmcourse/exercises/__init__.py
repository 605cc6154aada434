"""Auto-checked exercises, after Kaggle's learntools (introduced in notebook 00).

A notebook gets its exercises from ``mmcourse.course_exercises`` and calls::

    ex.q1.check(answer)   # Correct / Incorrect / Not attempted, with a reason
    ex.q1.hint()          # first hint; ex.q1.hint(2) for the second
    ex.q1.solution()      # the worked solution
    ex.q4.predict(2.0)    # an experiment's prediction, before running it

An experiment may ask for a ``Prediction`` first: ``predict(value)`` checks the value's kind,
remembers it and records it; ``check()`` then says in one sentence what was predicted and
what was measured. A prediction never changes whether the answer is correct.

Each notebook's exercises are one function, ``notebook_NN()`` in
``mmcourse/exercises/notebook_NN.py``, returning the ``ExerciseSet`` of its
``## Exercises`` section; ``mmcourse.course_exercises`` re-exports them for the
notebooks, and ``tests/test_course_exercises.py`` tests every exercise.

A starter cell that still holds the placeholder ``____`` runs and reports
"not attempted". Results render as coloured Markdown in Jupyter and as plain
text elsewhere. Checks are built from three helpers: ``expect_value`` (numbers
and arrays with a tolerance), ``expect_function`` (calls the learner's function
on test cases) and ``expect_model`` (inspects a Keras model's structure).
A checker signals a wrong answer by raising ``Incorrect`` with a message that
says what is wrong and how to fix it.

For classrooms (docs/TEACHING.md): when the environment variable ``MMCOURSE_RECORD``
names a file, every check appends its outcome there as one JSON line (what
``python -m mmcourse grade`` reads); ``MMCOURSE_EXAM=1`` or ``exam_mode()`` turns
``solution()`` off, and ``MMCOURSE_EXAM=nohints`` or ``exam_mode(hints=False)`` hints too.

It passes 500 lines because it is the family's one import: the checker, the record calls and
the builders that every ``notebook_NN`` module (and a learner) imports from here.
"""

from __future__ import annotations

import inspect
import os
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmcourse.exercises import record


class _Placeholder:
    """The blank a learner fills in. Any check of it reports "not attempted"."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "____"

    def __call__(self, *args, **kwargs):
        return self

    def __getattr__(self, name):  # lets `____.shape` or `____(x)` in a starter cell run
        if name.startswith("__"):
            raise AttributeError(name)
        return self


____ = _Placeholder()


class Incorrect(Exception):
    """Raised by a checker: the answer is wrong; the message says why and what to do."""


class NotAttempted(Exception):
    """Raised by a checker: the answer still holds the placeholder (e.g. a starter function
    whose body returns ``____``)."""


def contains_placeholder(answer: Any) -> bool:
    """Whether ``answer`` is ``____`` or holds it in a list, tuple or dict: an
    exercise not attempted. Notebook 00."""
    if answer is ____:
        return True
    if isinstance(answer, (list, tuple)):
        return any(contains_placeholder(item) for item in answer)
    if isinstance(answer, dict):
        return any(contains_placeholder(item) for item in answer.values())
    return False


_STYLE = {
    "correct": ("#2e7d32", "Correct"),
    "incorrect": ("#c62828", "Incorrect"),
    "not attempted": ("#1565c0", "Not attempted"),
    "hint": ("#ef6c00", "Hint"),
    "solution": ("#6a1b9a", "Solution"),
    "exam": ("#455a64", "Exam mode"),
    "predicted": ("#00838f", "Prediction recorded"),
}


@dataclass(frozen=True)
class Feedback:
    """What `check`, `hint` and `solution` return: Markdown in Jupyter, text elsewhere."""

    status: str
    message: str
    code: str = ""

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    def __bool__(self) -> bool:
        return self.correct

    def __str__(self) -> str:
        label = _STYLE[self.status][1]
        text = f"{label}: {self.message}" if self.message else label
        return f"{text}\n{self.code}" if self.code else text

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        colour, label = _STYLE[self.status]
        text = f'<span style="color:{colour}">**{label}:**</span> {self.message}'
        if self.code:
            text += f"\n\n```python\n{self.code}\n```"
        return text


#: Environment variable read at each call: exam mode ("1" or "nohints"). The record's
#: variable and format live in ``mmcourse.exercises.record``.
EXAM_VARIABLE = "MMCOURSE_EXAM"
_exam_override: tuple[bool, bool] | None = None  # set by exam_mode(): (exam on, hints on)


def exam_mode(on: bool = True, hints: bool = True) -> Feedback:
    """Turn exam mode on (``solution()`` refuses; with ``hints=False``, ``hint()`` too) or
    off, for this kernel; it overrides ``MMCOURSE_EXAM``. Call it in a setup cell."""
    global _exam_override
    if not isinstance(on, bool) or not isinstance(hints, bool):
        raise TypeError(f"exam_mode(on, hints) takes True or False, got on={on!r}, "
                        f"hints={hints!r}")
    _exam_override = (on, hints or not on)
    if not on:
        return Feedback("exam", "off: hints and solutions are available.")
    return Feedback("exam", "on: solutions are off" + ("." if hints else ", and so are hints."))


def _exam_state() -> tuple[bool, bool]:
    """(exam on, hints allowed), from ``exam_mode()`` if it was called, else the variable."""
    if _exam_override is not None:
        return _exam_override
    value = os.environ.get(EXAM_VARIABLE, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False, True
    return True, value != "nohints"


@dataclass(frozen=True)
class Prediction:
    """What a learner predicts before an experiment: a number (``choices`` empty, shown with
    ``unit``, e.g. ``"x"``) or one of ``choices``. ``measure(answer)`` gives the measured
    quantity from what the learner passes to ``check()``; without it, the measurement is what
    the checker returns. Introduced in notebook 00 (issue 24, section 5)."""

    question: str
    choices: tuple[str, ...] = ()
    unit: str = ""
    measure: Callable[[Any], Any] | None = None

    def validate(self, value: Any) -> float | str:
        """The prediction as stored: a float or one of ``choices``; else a clear error."""
        if self.choices:
            if not isinstance(value, str) or value.strip().lower() not in \
                    [choice.lower() for choice in self.choices]:
                raise ValueError(f"predict() takes one of {list(self.choices)} for "
                                 f"\"{self.question}\", got {value!r}")
            return next(c for c in self.choices if c.lower() == value.strip().lower())
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)):
            raise TypeError(f"predict() takes a number for \"{self.question}\", got "
                            f"{type(value).__name__} {value!r}")
        if not np.isfinite(value):
            raise ValueError(f"predict() takes a finite number for \"{self.question}\", "
                             f"got {value!r}")
        return float(value)

    def show(self, value: Any) -> str:
        """A value as the feedback writes it: ``4x``, ``0.812``, ``"both"``."""
        if self.choices or isinstance(value, str):
            return f'"{value}"'
        return f"{float(value):.3g}{self.unit}"

    def compare(self, name: str, predicted: Any, measured: Any) -> str:
        """The one sentence ``check()`` of question ``name`` adds: prediction against
        measurement (None: not measured, because the answer was not correct)."""
        if predicted is None:
            return f"No prediction recorded (ex.{name}.predict(...) before the experiment)."
        if measured is None:
            return (f"You predicted {self.show(predicted)}; the measurement comes with a "
                    f"correct answer.")
        return f"You predicted {self.show(predicted)}; the measurement is {self.show(measured)}."


@dataclass
class Exercise:
    """One auto-checked question.

    ``checker(answer)`` raises ``Incorrect`` for a wrong answer. ``reference``
    and ``wrong`` build a right answer and some wrong ones on demand: the test
    suite checks every exercise with both, so a checker cannot silently accept
    everything or nothing.
    """

    name: str
    prompt: str
    checker: Callable[[Any], None]
    hints: Sequence[str]
    solution_code: str
    reference: Callable[[], Any]
    wrong: Callable[[], list]
    correct_message: str = "well done."
    notebook: str = ""  # set by its ExerciseSet: "04" for notebook 04
    prediction: Prediction | None = None  # asked for before the experiment, if any
    predicted: float | str | None = field(default=None, repr=False)  # set by predict()

    def predict(self, value: Any = ____) -> Feedback:
        """Record the learner's prediction (before the experiment); the placeholder records
        nothing. A value of the wrong kind raises an error that says what is expected."""
        if self.prediction is None:
            raise ValueError(f"{self.name} asks for no prediction; call ex.{self.name}.check()")
        if contains_placeholder(value):
            return Feedback("not attempted", f"replace `____` with your prediction: "
                                             f"{self.prediction.question}")
        self.predicted = self.prediction.validate(value)
        record.write_prediction(self.notebook, self.name, self.predicted)
        return Feedback("predicted", f"you predicted {self.prediction.show(self.predicted)}. "
                                     f"Now run the experiment and check it.")

    def check(self, answer: Any = ____) -> Feedback:
        feedback, measured = self._judge(answer)
        if self.prediction is None or feedback.status == "not attempted":
            record.write(self.notebook, self.name, feedback.status, feedback.message)
            return feedback
        sentence = self.prediction.compare(self.name, self.predicted, measured)
        feedback = Feedback(feedback.status, f"{feedback.message} {sentence}")
        record.write(self.notebook, self.name, feedback.status, feedback.message,
                     prediction=self.predicted, measurement=measured)
        return feedback

    def _judge(self, answer: Any) -> tuple[Feedback, Any]:
        """The feedback, and the measurement for the prediction (None unless correct)."""
        not_attempted = Feedback("not attempted",
                                 f"replace `____` with your answer to {self.name}.")
        if contains_placeholder(answer):
            return not_attempted, None
        try:
            measured = self.checker(answer)
        except NotAttempted:
            return not_attempted, None
        except Incorrect as wrong:
            return Feedback("incorrect", str(wrong)), None
        if self.prediction is not None and self.prediction.measure is not None:
            measured = self.prediction.measure(answer)
        return Feedback("correct", self.correct_message), measured

    def hint(self, n: int = 1) -> Feedback:
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"hint number n must be an int, got {type(n).__name__}")
        if not 1 <= n <= len(self.hints):
            raise ValueError(f"{self.name} has hints 1 to {len(self.hints)}, got n={n}")
        if not _exam_state()[1]:
            return Feedback("exam", f"hints are off during this exam; check your answer with "
                                    f"ex.{self.name}.check(...).")
        suffix = f" (more: .hint({n + 1}))" if n < len(self.hints) else ""
        return Feedback("hint", f"{self.hints[n - 1]}{suffix}")

    def solution(self) -> Feedback:
        if _exam_state()[0]:
            return Feedback("exam", f"solutions are off during this exam; check your answer "
                                    f"with ex.{self.name}.check(...).")
        return Feedback("solution", f"one way to answer {self.name}:", self.solution_code)

    def __repr__(self) -> str:
        return f"{self.name}: {self.prompt}"


@dataclass
class ExerciseSet:
    """A notebook's exercises as attributes ``q1``, ``q2``, ...; iterable."""

    notebook: str
    exercises: list[Exercise] = field(default_factory=list)

    def __post_init__(self):
        self.notebook = self.notebook.removeprefix("notebook_")  # "notebook_04" -> "04"
        for number, exercise in enumerate(self.exercises, start=1):
            exercise.notebook = self.notebook
            setattr(self, f"q{number}", exercise)

    def __iter__(self):
        return iter(self.exercises)

    def __len__(self) -> int:
        return len(self.exercises)


def solution_from(reference: Callable, check: str, imports: str = "") -> str:
    """``solution_code`` written once: the source of ``reference``, the function the checker
    and the tests use as the right answer, then ``check`` (e.g. ``"ex.q2.check(normalise)"``),
    after ``imports`` if the notebook needs any. So the solution a learner is shown is the
    code the tests run. ``reference`` is written as a learner would write it: its public name,
    no docstring, names the notebook has (``np``)."""
    source = textwrap.dedent(inspect.getsource(reference)).strip()
    return "\n\n\n".join(part for part in (imports.strip(), source, check.strip()) if part)


def function_exercise(name: str, function: Callable, cases: Iterable[tuple], imports: str = "",
                      atol: float = 1e-5, rtol: float = 1e-5, dtype: Any = None,
                      **fields) -> Exercise:
    """An ``Exercise`` whose answer is a function: checked against ``function`` on ``cases``
    (``expect_function``), solved by its source then ``ex.<name>.check(<function>)``
    (``solution_from``, after ``imports``); ``fields`` are the ``Exercise``'s others."""
    return Exercise(name=name, checker=expect_function(function, cases, atol, rtol, dtype),
                    solution_code=solution_from(function, f"ex.{name}.check({function.__name__})",
                                                imports),
                    reference=lambda: function, **fields)


# --- checker builders -------------------------------------------------------


def _as_array(value: Any, what: str) -> np.ndarray:
    if isinstance(value, (str, bytes)) or value is None or callable(value):
        raise Incorrect(f"{what} should be a number or an array, got {type(value).__name__}.")
    if hasattr(value, "numpy"):  # a tf.Tensor or a Keras variable
        value = value.numpy()
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise Incorrect(
            f"{what} should be a number or an array, got {type(value).__name__}."
        ) from None
    return array


def compare(actual: Any, expected: Any, atol: float = 1e-6, rtol: float = 1e-6,
            what: str = "your answer") -> None:
    """Raise ``Incorrect`` unless ``actual`` equals ``expected`` (shape, then values)."""
    if isinstance(expected, (str, bool)) or expected is None:
        if actual != expected:
            raise Incorrect(f"{what} is {actual!r}; expected {expected!r}.")
        return
    if hasattr(actual, "as_list"):  # a tf.TensorShape
        actual = tuple(actual.as_list())
    if isinstance(expected, tuple) and all(isinstance(e, (int, type(None))) for e in expected):
        if not isinstance(actual, (tuple, list)) or tuple(actual) != expected:
            raise Incorrect(f"{what} is {actual!r}; expected the shape {expected!r}.")
        return
    actual_array = _as_array(actual, what)
    expected_array = np.asarray(expected, dtype=float)
    if actual_array.shape != expected_array.shape:
        raise Incorrect(
            f"{what} has shape {actual_array.shape}; expected shape {expected_array.shape}."
        )
    if not np.allclose(actual_array, expected_array, atol=atol, rtol=rtol, equal_nan=True):
        if expected_array.ndim == 0:
            raise Incorrect(f"{what} is {actual_array.item():.6g}; that is not right yet.")
        worst = np.unravel_index(np.argmax(np.abs(actual_array - expected_array)),
                                 expected_array.shape)
        raise Incorrect(
            f"{what} has the right shape {expected_array.shape} but wrong values: at index "
            f"{tuple(int(i) for i in worst)} it is {actual_array[worst]:.6g}, expected "
            f"{expected_array[worst]:.6g}."
        )


def expect_value(expected: Any, atol: float = 1e-6, rtol: float = 1e-6) -> Callable[[Any], None]:
    """A checker: the answer equals ``expected`` (a number, array, shape tuple or string)."""

    def checker(answer: Any) -> None:
        compare(answer, expected, atol=atol, rtol=rtol)

    return checker


def expect_function(reference: Callable, cases: Iterable[tuple], atol: float = 1e-5,
                    rtol: float = 1e-5, dtype: Any = None) -> Callable[[Any], None]:
    """A checker: the learner's function agrees with ``reference`` on every argument tuple.

    With ``dtype`` (e.g. ``np.float32``), each result must also be an array of that dtype (a
    NumPy array or a tensor), not a list or an array of another dtype."""
    cases = list(cases)
    dtype = None if dtype is None else np.dtype(dtype)

    def checker(answer: Any) -> None:
        if not callable(answer):
            raise Incorrect(f"pass your function itself (no parentheses), got "
                            f"{type(answer).__name__}.")
        for args in cases:
            shown = ", ".join(_short(a) for a in args)
            try:
                actual = answer(*args)
            except Exception as error:  # the learner's bug, reported, not raised
                raise Incorrect(f"calling it with ({shown}) raised "
                                f"{type(error).__name__}: {error}") from None
            if contains_placeholder(actual):
                raise NotAttempted
            compare(actual, reference(*args), atol=atol, rtol=rtol,
                    what=f"the result for ({shown})")
            if dtype is not None:
                _check_dtype(actual, dtype, shown)

    return checker


def _check_dtype(actual: Any, dtype: np.dtype, shown: str) -> None:
    array = actual.numpy() if hasattr(actual, "numpy") else actual  # a tf.Tensor
    if not isinstance(array, np.ndarray):
        raise Incorrect(f"the result for ({shown}) has the right values but is a "
                        f"{type(actual).__name__}; return a NumPy array of dtype {dtype.name} "
                        f"(np.asarray(..., dtype=np.{dtype.name})).")
    if array.dtype != dtype:
        raise Incorrect(f"the result for ({shown}) has the right values but dtype "
                        f"{array.dtype}; return dtype {dtype.name} (.astype(np.{dtype.name})).")


def expect_model(layer_types: Sequence[str] = (), output_shape: tuple | None = None,
                 params: int | None = None, max_params: int | None = None,
                 n_inputs: int | None = None, output_activation: str | None = None,
                 fed_by: dict[str, str] | None = None) -> Callable[[Any], None]:
    """A checker on a Keras model: it has ``n_inputs`` inputs, contains these layer classes
    (by name), has this output shape (without the batch axis) and this many (or at most this
    many) parameters. ``output_activation`` (e.g. ``"sigmoid"``) is the activation the last
    layer must apply; ``fed_by`` maps a layer class to the class whose output every layer of
    that class must take as input (``{"LSTM": "Embedding"}``)."""

    def checker(model: Any) -> None:
        if not (hasattr(model, "layers") and hasattr(model, "count_params")):
            raise Incorrect(f"expected a Keras model, got {type(model).__name__}.")
        if n_inputs is not None and len(model.inputs) != n_inputs:
            raise Incorrect(f"the model has {len(model.inputs)} input(s); expected {n_inputs} "
                            f"(pass a list of keras.Input to keras.Model).")
        names = [type(layer).__name__ for layer in model.layers]
        missing = [t for t in layer_types if t not in names]
        if missing:
            raise Incorrect(f"the model has layers {names}; it still needs {missing}.")
        if output_shape is not None and tuple(model.output_shape[1:]) != tuple(output_shape):
            raise Incorrect(f"the model's output shape is {tuple(model.output_shape[1:])} "
                            f"(without the batch axis); expected {tuple(output_shape)}.")
        count = model.count_params()
        if params is not None and count != params:
            raise Incorrect(f"the model has {count:,} parameters; expected {params:,}.")
        if max_params is not None and count > max_params:
            raise Incorrect(f"the model has {count:,} parameters; keep it to at most "
                            f"{max_params:,}.")
        if output_activation is not None:
            _check_output_activation(model, output_activation)
        for layer_type, source_type in (fed_by or {}).items():
            for layer in model.layers:
                if type(layer).__name__ == layer_type:
                    sources = _input_layers(layer)
                    if [type(s).__name__ for s in sources] != [source_type]:
                        raise Incorrect(
                            f"the {layer_type} layer {layer.name!r} takes its input from "
                            f"{[s.name for s in sources] or 'the model input'}; feed it the "
                            f"output of the {source_type} layer before it.")

    return checker


def _check_output_activation(model: Any, expected: str) -> None:
    history = getattr(model.outputs[0], "_keras_history", None) if model.outputs else None
    last = history[0] if history is not None else model.layers[-1]  # the output's layer
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", None) if activation is not None else None
    if name != expected:
        raise Incorrect(f"the last layer {last.name!r} applies "
                        f"{name or 'no activation'}; the output needs "
                        f"activation={expected!r}.")


def _input_layers(layer: Any) -> list:
    """The layers whose outputs ``layer`` takes as inputs in a functional model (not the
    operations that compute masks, nor the model's inputs)."""
    import keras

    inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    sources = []
    for tensor in inputs:
        history = getattr(tensor, "_keras_history", None)
        if history is not None and isinstance(history[0], keras.layers.Layer) and \
                type(history[0]).__name__ != "InputLayer":
            sources.append(history[0])
    return sources


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
