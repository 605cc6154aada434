"""Exercises of notebook 01 (data and augmentation): word swaps for flips, normalisation, padding,
label counts, and an experiment on how small a vocabulary can be.
"""

from __future__ import annotations

import numpy as np

from mmcourse.exercises import Exercise, ExerciseSet, Prediction, expect_function, function_exercise

#: q5: the largest share of validation tokens the vocabulary may leave unknown ([UNK]).
MAX_OOV_RATE = 0.05


def _captions(split):
    from mmcourse.data.scenes import load_records

    return [record["text"] for record in load_records("match", "relations", split)]


def smallest_vocabulary(max_oov_rate=MAX_OOV_RATE):
    """q5's reference: the smallest vocabulary of the relations training captions whose OOV
    rate on the validation captions is at most ``max_oov_rate``."""
    from mmcourse.data import text

    full, val = text.build_vocabulary(_captions("train")), _captions("val")
    return next(full[:m] for m in range(2, len(full) + 1)
                if text.oov_rate(val, full[:m]) <= max_oov_rate)


def notebook_01() -> ExerciseSet:
    """Exercises of notebook 01: word swaps for flips, normalisation, padding, label counts."""
    from mmcourse.exercises import Incorrect, compare

    def swap_vertical(text):
        from mmcourse.data.augment import swap_spatial_words

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

    def pad_or_truncate(token_ids, length):
        padded = list(token_ids) + [0] * length
        return np.array(padded[:length], dtype=np.int32)

    pad_cases = [([5, 7, 2], 5), ([3, 4, 5, 6, 7, 8], 4), ([], 3), ([9], 1)]

    def first_batch_positives():
        from mmcourse.data.scenes import load_records
        from mmcourse.data.store import ensure_data

        records = load_records("match", "relations", "val", ensure_data())
        return int(sum(record["label"] for record in records[:32]))

    def wrong_counts():
        positives = first_batch_positives()
        negatives = [32 - positives] if positives != 16 else []  # the 0 labels counted
        return [positives + 1, positives - 1, 32, positives / 32, None, *negatives]

    def check_positives(answer):
        compare(answer, first_batch_positives(), what="your count")

    def check_vocabulary(vocabulary):
        from mmcourse.data import text

        if not isinstance(vocabulary, (list, tuple)) or not all(
                isinstance(token, str) for token in vocabulary):
            raise Incorrect(f"pass the vocabulary itself, a list of tokens, got "
                            f"{type(vocabulary).__name__}.")
        if list(vocabulary[:2]) != ["", "[UNK]"]:
            raise Incorrect("a vocabulary starts with '' (padding, id 0) and '[UNK]' (id 1), "
                            "as text.build_vocabulary makes it.")
        if len(set(vocabulary)) != len(vocabulary):
            raise Incorrect("the vocabulary lists a token twice.")
        train_words = set(text.build_vocabulary(_captions("train")))
        if not set(vocabulary) <= train_words:
            raise Incorrect(f"{sorted(set(vocabulary) - train_words)} never occur in the "
                            f"training captions: build the vocabulary from them.")
        rate = text.oov_rate(_captions("val"), vocabulary)
        if rate > MAX_OOV_RATE:
            raise Incorrect(f"with {len(vocabulary)} tokens the checker measures an OOV rate of "
                            f"{rate:.3f} on the validation captions; the bound is at most "
                            f"{MAX_OOV_RATE}: keep more of the frequent words.")
        smallest = len(smallest_vocabulary())
        if len(vocabulary) > smallest:
            raise Incorrect(f"{len(vocabulary)} tokens meet the bound, but so do {smallest}: "
                            f"find the smallest vocabulary.")
        return len(train_words) - len(vocabulary)  # the words it dropped

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
                lambda text: None,  # forgot the return
            ],
        ),
        function_exercise(
            name="q2",
            prompt="A function normalise(image) taking an RGB uint8 image to float32 values "
                   "in [0, 1].",
            function=normalise,
            cases=images,
            dtype=np.float32,  # what Keras expects
            hints=["uint8 pixels run from 0 to 255.",
                   "Convert first, then divide: image.astype(np.float32) / 255."],
            wrong=lambda: [
                lambda image: image.astype(np.float32),  # still 0..255
                lambda image: image / 256,  # 255 -> 0.996
                lambda image: image // 255,  # integer division: only 0 and 1
                lambda image: image / 255.0,  # float64
                lambda image: (image.astype(np.float32) / 255).tolist(),  # a list
                lambda image: image.astype(np.float32) / 254,  # off by one
                lambda image: None,  # forgot the return
            ],
        ),
        function_exercise(
            name="q3",
            prompt="A function pad_or_truncate(token_ids, length) doing what TextVectorization's "
                   "output_sequence_length does: keep the first `length` ids, pad with 0 at the "
                   "end, return an int32 array.",
            function=pad_or_truncate,
            cases=pad_cases,
            dtype=np.int32,
            hints=["Padding id 0 goes after the tokens; a too-long list loses its tail.",
                   "np.array((list(token_ids) + [0] * length)[:length], dtype=np.int32)"],
            wrong=lambda: [
                lambda ids, n: np.array(([0] * n + list(ids))[-n:], np.int32),  # pads in front
                lambda ids, n: np.array((list(ids) + [1] * n)[:n], np.int32),  # pads with [UNK]
                lambda ids, n: np.array((list(ids) + [0] * n)[-n:], np.int32),  # keeps the tail
                lambda ids, n: np.array(list(ids) + [0] * (n - len(ids)), np.int32),  # no cut
                lambda ids, n: np.array((list(ids) + [0] * n)[:n]),  # int64, not int32
                lambda ids, n: (list(ids) + [0] * n)[:n],  # a list
                lambda ids, n: np.array((list(ids) + [0] * n)[:n - 1], np.int32),  # off by one
                lambda ids, n: None,  # forgot the return
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
            solution_code="dataset = pipeline.make_dataset('match', 'relations', 'val', "
                          "batch_size=32)\n"
                          "(image_batch, token_ids), labels = next(iter(dataset))\n"
                          "ex.q4.check(int(labels.numpy().sum()))",
            reference=first_batch_positives,
            wrong=wrong_counts,
        ),
        Exercise(
            name="q5",
            prompt="Experiment. Predict first: the relations captions use 27 words; how many "
                   "can a vocabulary drop before more than 5% of the validation tokens become "
                   "[UNK]? Build vocabularies of the training captions with "
                   "text.build_vocabulary(train_captions, max_tokens=m) for several m, measure "
                   "text.oov_rate(val_captions, vocabulary), and pass the smallest vocabulary "
                   f"(a list of tokens) whose OOV rate is at most {MAX_OOV_RATE}. The checker "
                   "measures its OOV rate itself, and how small a vocabulary can be.",
            checker=check_vocabulary,
            hints=["train_captions = [r['text'] for r in data.load_records('match', "
                   "'relations', 'train')], and the same for 'val'.",
                   "build_vocabulary sorts the words by frequency, so "
                   "text.build_vocabulary(train_captions)[:m] is the vocabulary of max_tokens=m: "
                   "build it once and try every m."],
            prediction=Prediction(
                "how many of the 27 words can the vocabulary drop?",
                unit=" words"),
            solution_code="ex.q5.predict(10)\n" +
            "train_captions = [r['text'] for r in data.load_records('match', "
                          "'relations', 'train')]\n"
                          "val_captions = [r['text'] for r in data.load_records('match', "
                          "'relations', 'val')]\n"
                          "full = text.build_vocabulary(train_captions)\n"
                          "rates = {m: text.oov_rate(val_captions, full[:m]) "
                          "for m in range(2, len(full) + 1)}\n"
                          "m = min(m for m, rate in rates.items() if rate <= 0.05)\n"
                          "print(m, 'tokens, OOV rate', round(rates[m], 3))\n"
                          "ex.q5.check(full[:m])",
            reference=smallest_vocabulary,
            wrong=lambda: [
                smallest_vocabulary(max_oov_rate=0.0),  # every word: not the smallest
                smallest_vocabulary()[:-1],  # one token too few: above the bound
                smallest_vocabulary()[2:],  # without '' and '[UNK]'
                smallest_vocabulary()[::-1],
                [*smallest_vocabulary()[:-1], "zebra"],  # a word no caption has
                len(smallest_vocabulary()),  # the size, not the vocabulary
                None],
        ),
    ])
