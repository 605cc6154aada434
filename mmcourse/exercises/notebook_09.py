"""Exercises of notebook 09 (your own data, in your own language): Chinese tokens, the lines
check-data reports, which captions may be flipped, and an experiment with the image-only
baseline on shuffled-caption pairs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmcourse.exercises import Exercise, ExerciseSet, Incorrect, Prediction

#: q1: the caption to tokenise, and its tokens worked out by hand.
Q1_CAPTION = "红色圆形，在左边！"
Q1_TOKENS = ["红", "色", "圆", "形", "在", "左", "边"]

#: q2: a captions.csv with problems on known file lines (a caption spans lines 3-4, so the
#: record count and the line number part ways after it).
Q2_CSV = ('image,text,label\n'
          'a.png,一个红色圆形,1\n'
          'a.png,"a red circle,\nround",1\n'
          'b.png,,0\n'
          'a.png,一个蓝色方形,maybe\n'
          'missing.png,一个绿色三角形,1\n'
          'b.png,a blue square,0\n')
Q2_LINES = [5, 6, 7]

#: q3: captions, and whether a left-right flip may swap their words safely (by hand).
Q3_CAPTIONS = ["红色圆形在蓝色方形的左边", "大小左右的圆形", "马上", "a red circle left of a blue square",
               "the right answer"]
Q3_SAFE = [True, False, True, True, False]


def train_q4(folder, fusion="image"):
    """q4's reference (and, with another fusion, a wrong answer): the baseline trained on a
    small scan folder, with its model kept."""
    from mmcourse.apps import owndata

    return owndata.train_folder(folder, fusion=fusion, epochs=1, seed=0, log=None,
                                keep_model=True)


def _q4_folder():
    import tempfile

    from mmcourse.data import scans

    return scans.write_scan_folder(Path(tempfile.mkdtemp()) / "scans", count=40, seed=2)


def write_q2_folder(folder) -> Path:
    """Write q2's folder: two small images and ``Q2_CSV`` as captions.csv."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, colour in (("a.png", (0, 0, 255)), ("b.png", (255, 0, 0))):
        cv2.imwrite(str(folder / name), np.full((16, 16, 3), colour, np.uint8))
    (folder / "captions.csv").write_text(Q2_CSV, encoding="utf-8")
    return folder


def notebook_09() -> ExerciseSet:
    """Exercises of notebook 09 (your own data, in your own language)."""

    def check_tokens(answer):
        if isinstance(answer, str):
            raise Incorrect("give the list of tokens (split_words returns a list), not a string.")
        answer = list(answer) if isinstance(answer, (list, tuple)) else answer
        if answer == [Q1_CAPTION] or answer == ["红色圆形", "在左边"]:
            raise Incorrect("each Han character is a token of its own: 红色 is two tokens.")
        if isinstance(answer, list) and ("，" in answer or "！" in answer or "," in answer):
            raise Incorrect("punctuation (，！) is removed by the standardisation.")
        if answer != Q1_TOKENS:
            raise Incorrect(f"not the tokens split_words makes: got {answer!r}.")

    def check_lines(answer):
        if not isinstance(answer, (list, tuple)):
            raise Incorrect(f"give a list of line numbers, got {type(answer).__name__}.")
        lines = sorted(answer)
        if lines == [4, 5, 6]:
            raise Incorrect("those are record numbers: the caption on lines 3-4 spans two "
                            "file lines; read each Problem's .line.")
        if lines and max(lines) > 8:
            raise Incorrect("the file has 8 lines.")
        if lines == [5] or lines == [6]:
            raise Incorrect("check_folder reports every problem at once: there is more than one.")
        if 3 in lines:
            raise Incorrect("line 3 opens a quoted caption that closes on line 4: that is a "
                            "legal multi-line caption, not a problem.")
        if lines != Q2_LINES:
            raise Incorrect(f"lines {lines} are not the ones with a problem; read each "
                            f"Problem's .line (there are {len(Q2_LINES)}).")

    def check_safe(answer):
        if not isinstance(answer, (list, tuple)) or len(answer) != len(Q3_CAPTIONS):
            raise Incorrect(f"give one True/False per caption ({len(Q3_CAPTIONS)} in all).")
        answer = [bool(a) for a in answer]
        if answer[2] is False:
            raise Incorrect("马上 has 上, a vertical word: a left-right flip leaves it alone.")
        if answer[1] is True:
            raise Incorrect("左右 means 'about' or 'both sides': swapping it to 右左 is nonsense.")
        if answer[4] is True:
            raise Incorrect("'the right answer' means correct, not a side.")
        if answer != Q3_SAFE:
            raise Incorrect(f"{answer} differs from what augment.flip_safe says for "
                            f"{sum(a != b for a, b in zip(answer, Q3_SAFE, strict=True))} "
                            f"caption(s).")

    def check_baseline(result):
        from mmcourse.apps import raw_model

        if not isinstance(result, dict) or "model" not in result or "data" not in result:
            raise Incorrect(f"pass the dict that owndata.train_folder(..., keep_model=True) "
                            f"returns (the checker re-scores its model), got "
                            f"{type(result).__name__}.")
        if result.get("fusion") != "image":
            raise Incorrect(f"this run trained fusion={result.get('fusion')!r}; the experiment "
                            f"is about the image-only baseline, fusion='image'.")
        test = result["data"].splits["test"]
        probabilities = raw_model.predict(result["model"], test["images"], list(test["texts"]))
        accuracy = float(np.mean((probabilities > 0.5) == (test["labels"] > 0.5)))
        if abs(accuracy - 0.5) > 1e-6:
            raise Incorrect(f"the checker measures a test accuracy of {accuracy:.3f}; the bound "
                            f"is exactly 0.5. Was this model trained on a folder without "
                            f"labels?")
        return accuracy

    return ExerciseSet("notebook_09", [
        Exercise(
            name="q1",
            prompt=f"Predict the tokens of {Q1_CAPTION!r}, then check with "
                   f"mmcourse.data.text.split_words: pass the list.",
            checker=check_tokens,
            hints=["The standardisation removes punctuation (，！) and puts a space around "
                   "every Han character.",
                   "So 红色圆形 gives four tokens: 红 色 圆 形."],
            prediction=Prediction(
                f"how many tokens does split_words make of {Q1_CAPTION!r}?",
                unit=" tokens",
                measure=len),
            solution_code="ex.q1.predict(7)\n" +
            f"tokens = text.split_words({Q1_CAPTION!r})\nex.q1.check(tokens)",
            reference=lambda: list(Q1_TOKENS),
            wrong=lambda: [[Q1_CAPTION], ["红色圆形", "在左边"], [*Q1_TOKENS, "！"],
                           Q1_TOKENS[:-1], "红 色 圆 形 在 左 边", None],
        ),
        Exercise(
            name="q2",
            prompt="mmcourse.exercises.notebook_09.write_q2_folder(folder) writes a captions.csv with "
                   "planted problems. Run folders.check_folder on it and give the sorted list "
                   "of the file line numbers that have a problem.",
            checker=check_lines,
            hints=["check = folders.check_folder(folder); each item of check.problems has a "
                   ".line.",
                   "A quoted caption may span two lines: line numbers are file lines, not "
                   "record numbers."],
            solution_code="from mmcourse.exercises.notebook_09 import write_q2_folder\n"
                          "q2_folder = write_q2_folder(Path(tempfile.mkdtemp()) / 'q2')\n"
                          "check = folders.check_folder(q2_folder)\n"
                          "ex.q2.check(sorted(problem.line for problem in check.problems))",
            reference=lambda: list(Q2_LINES),
            wrong=lambda: [[4, 5, 6], [5], [3, 5, 6, 7], [5, 6, 7, 8], [6, 7, 8], "5, 6, 7", None],
        ),
        Exercise(
            name="q3",
            prompt="For each caption of mmcourse.exercises.notebook_09.Q3_CAPTIONS, may a left-right "
                   "flip of its image swap its words safely? Predict, then check with "
                   "augment.flip_safe: pass one True/False per caption.",
            checker=check_safe,
            hints=["A spatial word is safe where it names a side: 左边, 'left of', 'on the "
                   "right'.",
                   "A caption with no left/right word at all is always safe to flip "
                   "left-right."],
            solution_code="from mmcourse.exercises.notebook_09 import Q3_CAPTIONS\n"
                          "ex.q3.check([augment.flip_safe(c, horizontal=True) "
                          "for c in Q3_CAPTIONS])",
            reference=lambda: list(Q3_SAFE),
            wrong=lambda: [[True] * 5, [True, True, True, True, True],
                           [True, False, False, True, False], [True, False, True, True, True],
                           [True, False], None],
        ),
        Exercise(
            name="q4",
            prompt="Experiment. A folder without labels gets its false pairs by shuffling "
                   "captions: every image is shown once with its caption and once with "
                   "another. Predict the test accuracy of the image-only baseline "
                   "(fusion='image'), then train it with owndata.train_folder on a small scan "
                   "folder (1 epoch is enough, keep_model=True), print result['test_accuracy'], "
                   "and pass the result. The checker re-scores its model on the test pairs: "
                   "the bound is exactly 0.5.",
            checker=check_baseline,
            hints=["The image-only model gives the same probability to both pairs of an "
                   "image.",
                   "So for each image exactly one of its two pairs is right, whatever it "
                   "learnt."],
            prediction=Prediction("what test accuracy does the image-only baseline reach?"),
            solution_code="ex.q4.predict(0.5)\n" +
            "q4_folder = scan_data.write_scan_folder(Path(tempfile.mkdtemp()) / "
                          "'scans', count=40, seed=2)\n"
                          "result = owndata.train_folder(q4_folder, fusion='image', epochs=1, "
                          "seed=0, log=None, keep_model=True)\n"
                          "print(result['test_accuracy'])\n"
                          "ex.q4.check(result)",
            reference=lambda: train_q4(_q4_folder()),
            wrong=lambda: [
                0.5,  # the number typed in: not a measurement
                {"fusion": "image", "test_accuracy": 0.5},  # no model to re-score
                train_q4(_q4_folder(), fusion="concat"),  # not the baseline
                "0.5", None],
        ),
    ])
