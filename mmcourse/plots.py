"""Learning curves, the train-validation gap and the confusion matrix (introduced in
notebook 05), and the course's figure style.

The house style (``use_house_style``, ``label_axes``): a readable size and font, labelled
axes with their units, a title that states the message, and no overprinted labels (a
categorical axis gets one row or tick per item instead of annotated points).
Every plotting function returns a matplotlib ``Figure`` (call ``plt.show()`` in a
notebook). ``history`` arguments accept a ``keras.callbacks.History`` or its
``.history`` dict (``{"loss": [...], "val_loss": [...], ...}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: The course's matplotlib settings: readable sizes, a light grid, no top/right frame.
HOUSE_STYLE = {
    "figure.figsize": (7.0, 4.0), "figure.dpi": 100, "font.size": 10,
    "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9,
    "legend.fontsize": 9, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "image.interpolation": "nearest",
}


def use_house_style() -> None:
    """Apply ``HOUSE_STYLE`` to matplotlib's defaults (every later figure follows it).
    Called in the setup cell of notebooks 01-05 and 07. Introduced in notebook 01."""
    import matplotlib  # noqa: PLC0415

    matplotlib.rcParams.update(HOUSE_STYLE)


def label_axes(axis, xlabel: str, ylabel: str, title: str) -> None:
    """Label an axis the house way: ``xlabel`` and ``ylabel`` name the quantity and its unit
    (e.g. "epoch", "loss (nats)"), ``title`` states the message of the figure. Each must be a
    non-empty string. Introduced in notebook 02."""
    for name, value in (("xlabel", xlabel), ("ylabel", ylabel), ("title", title)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)


def mean_curve(runs: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, sample standard deviation) per epoch of per-seed curves that may have
    different lengths (a run stopped early): epoch e averages the runs that reached it; the
    deviation is 0 where only one run did. Introduced in notebook 05."""
    curves = [np.asarray(run, dtype=float) for run in runs]
    if not curves or any(curve.ndim != 1 or curve.size == 0 for curve in curves):
        raise ValueError(f"runs must be a non-empty list of non-empty 1-D curves, got {runs!r}")
    length = max(curve.size for curve in curves)
    means, stds = np.empty(length), np.empty(length)
    for epoch in range(length):
        values = np.array([curve[epoch] for curve in curves if curve.size > epoch])
        means[epoch] = values.mean()
        stds[epoch] = values.std(ddof=1) if values.size > 1 else 0.0
    return means, stds


def plot_mean_curves(curves: Mapping[str, Sequence[Sequence[float]]], ylabel: str, title: str,
                     reference: float | None = None, reference_label: str = "chance",
                     xlabel: str = "epoch", axis=None, figsize=(7, 4),
                     linestyles: Mapping[str, str] | None = None):
    """Per name, the mean over seeds of per-epoch curves (``mean_curve``), with a band of
    +-1 standard deviation; ``reference`` draws a dotted horizontal line (for example the
    loss of chance, ln 2); ``linestyles`` gives some names another line style (``"--"``), so
    a curve that runs on top of another stays visible. Draws on ``axis`` if given (legend
    inside), else on a new figure with the legend outside, to the right. Returns the figure.
    Introduced in notebook 05."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    if not curves:
        raise ValueError("curves must map at least one name to its per-seed curves")
    linestyles = dict(linestyles or {})
    if set(linestyles) - set(curves):
        raise ValueError(f"linestyles names curves that are not drawn: "
                         f"{sorted(set(linestyles) - set(curves))}")
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    own_figure = axis is None
    if own_figure:
        figure, axis = plt.subplots(figsize=figsize)
    else:
        figure = axis.figure
    for name, runs in curves.items():
        means, stds = mean_curve(runs)
        epochs = np.arange(1, means.size + 1)
        line, = axis.plot(epochs, means, linestyle=linestyles.get(name, "-"),
                          label=f"{name} (n={len(runs)})")
        axis.fill_between(epochs, means - stds, means + stds, color=line.get_color(),
                          alpha=0.15, linewidth=0)
    if reference is not None:
        axis.axhline(reference, color="black", linestyle=":", linewidth=1, label=reference_label)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    if own_figure:  # room to the right: the legend never covers a curve
        axis.legend(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
        figure.tight_layout()
    else:
        axis.legend()
    return figure


def plot_seed_comparison(runs: Mapping[str, Sequence[float]], xlabel: str, title: str,
                         reference: float | None = None, reference_label: str = "chance",
                         figsize=(7, 3.6)):
    """A dot chart of runs over seeds: one row per name in ``runs`` (in the given order), a
    small dot per seed, and the mean with a +-1 sample standard deviation bar; the legend
    says which is which. ``reference`` draws a dotted vertical line (for example chance).
    Rows never overprint, whatever the values. Introduced in notebook 04."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    if not runs:
        raise ValueError("runs must map at least one name to its per-seed values")
    values = {}
    for name, seeds in runs.items():
        array = np.asarray(seeds, dtype=float)
        if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
            raise ValueError(f"runs[{name!r}] must be a non-empty 1-D sequence of finite "
                             f"numbers, got {seeds!r}")
        values[name] = array
    figure, axis = plt.subplots(figsize=figsize)
    rows = np.arange(len(values))[::-1]  # the first name on top
    for index, (row, array) in enumerate(zip(rows, values.values(), strict=True)):
        axis.plot(array, np.full(array.size, row), "o", color="grey", alpha=0.5, markersize=4,
                  label="one seed" if index == 0 else None)
        std = array.std(ddof=1) if array.size > 1 else 0.0
        axis.errorbar(array.mean(), row, xerr=std, fmt="D", color="C0", capsize=4,
                      markersize=6, label="mean ± 1 std over seeds" if index == 0 else None)
    if reference is not None:
        axis.axvline(reference, color="black", linestyle=":", linewidth=1, label=reference_label)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # off the dots
    axis.set_yticks(rows, [f"{name} (n={array.size})" for name, array in values.items()])
    axis.set_xlabel(xlabel)
    axis.set_title(title)
    axis.grid(axis="y", visible=False)
    figure.tight_layout()
    return figure


def history_dict(history) -> dict[str, list[float]]:
    """The ``{metric: [value per epoch]}`` dict of a ``History`` or of such a dict."""
    if hasattr(history, "history") and isinstance(history.history, Mapping):
        history = history.history
    if not isinstance(history, Mapping):
        raise TypeError(f"history must be a keras History or a dict of lists, got "
                        f"{type(history).__name__}")
    return {str(key): [float(v) for v in values] for key, values in history.items()}


def train_val_gap(history, metric: str = "accuracy", epoch: int = -1) -> float:
    """Training minus validation ``metric`` at ``epoch`` (default: the last one).

    For accuracy, a large positive gap means the model memorises the training set
    (overfitting). Introduced in notebook 05.
    """
    values = history_dict(history)
    for key in (metric, f"val_{metric}"):
        if key not in values:
            raise ValueError(f"history has no {key!r}; it has {sorted(values)}")
    return float(values[metric][epoch] - values[f"val_{metric}"][epoch])


def plot_learning_curves(history, metrics: Sequence[str] = ("loss", "accuracy"),
                         title: str | None = None, figsize=(8, 3)):
    """One panel per metric: training (solid) against validation (dashed), per epoch.

    Introduced in notebook 05.
    """
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    values = history_dict(history)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    missing = [m for m in metrics if m not in values]
    if missing:
        raise ValueError(f"history has no {missing}; it has {sorted(values)}")
    figure, axes = plt.subplots(1, len(metrics), figsize=figsize, squeeze=False)
    for axis, metric in zip(axes[0], metrics, strict=True):
        epochs = np.arange(1, len(values[metric]) + 1)
        axis.plot(epochs, values[metric], label="train")
        if f"val_{metric}" in values:
            axis.plot(epochs, values[f"val_{metric}"], "--", label="validation")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_ylabel(f"{metric} (nats)" if metric.endswith("loss") else metric)
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_histories(histories: Mapping[str, object], metric: str = "accuracy",
                   figsize=(8, 3)):
    """Compare runs: for each named history, its training (solid) and validation
    (dashed) ``metric`` in one colour; left panel training, right panel validation.

    Introduced in notebook 05 (overfitting remedies side by side).
    """
    import matplotlib.pyplot as plt  # noqa: PLC0415

    if not histories:
        raise ValueError("histories must name at least one run")
    figure, (train_axis, val_axis) = plt.subplots(1, 2, figsize=figsize, sharey=True)
    for name, history in histories.items():
        values = history_dict(history)
        for key in (metric, f"val_{metric}"):
            if key not in values:
                raise ValueError(f"history {name!r} has no {key!r}; it has {sorted(values)}")
        epochs = np.arange(1, len(values[metric]) + 1)
        (line,) = train_axis.plot(epochs, values[metric], label=name)
        val_axis.plot(epochs, values[f"val_{metric}"], "--", color=line.get_color(), label=name)
    train_axis.set_title(f"training {metric}")
    val_axis.set_title(f"validation {metric}")
    for axis in (train_axis, val_axis):
        axis.set_xlabel("epoch")
    val_axis.legend(fontsize="small")
    figure.tight_layout()
    return figure


def _as_labels(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] > 1:  # class probabilities: take the argmax
        array = array.argmax(axis=1)
    elif array.ndim == 2 and array.shape[1] == 1:  # sigmoid output or (N, 1) labels
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D labels or (N, C) scores, got shape {array.shape}")
    if array.dtype.kind == "f" and np.any(array != np.round(array)):
        array = array >= 0.5  # sigmoid probabilities; whole floats are class ids
    return array.astype(np.int64)


def confusion_matrix(labels, predictions, num_classes: int | None = None) -> np.ndarray:
    """Counts ``matrix[true, predicted]`` (int64, ``num_classes`` x ``num_classes``).

    ``predictions`` may be class ids, (N, C) probabilities (argmax) or sigmoid outputs
    (thresholded at 0.5). Introduced in notebook 05.
    """
    true = _as_labels(labels, "labels")
    predicted = _as_labels(predictions, "predictions")
    if true.shape != predicted.shape:
        raise ValueError(f"labels and predictions differ in length: {true.shape[0]} and "
                         f"{predicted.shape[0]}")
    if true.size and min(true.min(), predicted.min()) < 0:
        raise ValueError("labels and predictions must be non-negative class ids")
    if num_classes is None:
        num_classes = int(max(true.max(initial=0), predicted.max(initial=0))) + 1
    elif true.size and max(true.max(), predicted.max()) >= num_classes:
        raise ValueError(f"a class id is >= num_classes={num_classes}")
    flat = true * num_classes + predicted
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def plot_confusion_matrix(labels, predictions, class_names: Sequence[str] | None = None,
                          normalize: bool = False, title: str | None = None, figsize=(3.5, 3)):
    """The confusion matrix as an image with the count (or row fraction, with
    ``normalize``) in each cell; rows are the true class, columns the prediction.

    Introduced in notebook 05.
    """
    import matplotlib.pyplot as plt  # noqa: PLC0415

    num_classes = len(class_names) if class_names is not None else None
    matrix = confusion_matrix(labels, predictions, num_classes)
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalize else matrix
    names = list(class_names) if class_names is not None else [str(i) for i in
                                                                range(len(matrix))]
    figure, axis = plt.subplots(figsize=figsize)
    axis.imshow(shown, cmap="Blues", vmin=0)
    axis.grid(False)  # grid lines would cut through the cells
    ticks = np.arange(len(names))
    axis.set_xticks(ticks, names)
    axis.set_yticks(ticks, names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    limit = shown.max() / 2 if shown.size else 0
    for (row, column), value in np.ndenumerate(shown):
        text = f"{value:.2f}" if normalize else str(int(value))
        axis.text(column, row, text, ha="center", va="center",
                  color="white" if value > limit else "black")
    if title:
        axis.set_title(title)
    figure.tight_layout()
    return figure


def plot_bars_by_type(runs: Mapping[str, Mapping[str, Sequence[float]]], types: Sequence[str],
                      title: str, chance: Mapping[str, float] | None = None,
                      ylabel: str = "test accuracy", figsize=(10, 3.6)):
    """Grouped bars: for each type on the x axis, one bar per model, the mean over its runs
    (seeds) with a +-1 standard deviation error bar, cut at 0 and 1 (an accuracy cannot leave
    them). ``runs[model][type]`` is the list of per-seed values; ``chance`` draws a dotted
    mark per type. The legend sits above the axes, clear of the bars. Introduced in
    notebook 06.
    """
    import matplotlib.pyplot as plt  # noqa: PLC0415

    if not runs or not types:
        raise ValueError("runs must name at least one model and types at least one type")
    figure, axis = plt.subplots(figsize=figsize)
    width = 0.8 / len(runs)
    positions = np.arange(len(types))
    for index, (model, by_type) in enumerate(runs.items()):
        missing = [t for t in types if t not in by_type]
        if missing:
            raise ValueError(f"runs[{model!r}] has no values for {missing}")
        values = [np.asarray(by_type[t], dtype=float) for t in types]
        means = np.array([v.mean() for v in values])
        spreads = np.array([v.std(ddof=1) if v.size > 1 else 0.0 for v in values])
        errors = [np.minimum(spreads, means), np.minimum(spreads, 1 - means)]  # within [0, 1]
        axis.bar(positions + (index - (len(runs) - 1) / 2) * width, means, width, yerr=errors,
                 capsize=2, label=model)
    if chance is not None:
        for position, name in zip(positions, types, strict=True):
            if name in chance:
                axis.plot([position - 0.4, position + 0.4], [chance[name]] * 2, ":",
                          color="black", linewidth=1)
    axis.set_xticks(positions, types, rotation=20, ha="right")
    axis.set_ylim(0, 1.05)
    axis.set_ylabel(ylabel)
    axis.set_title(title, pad=28)
    axis.legend(fontsize="small", ncols=len(runs), loc="lower center",
                bbox_to_anchor=(0.5, 1.0), frameon=False)
    figure.tight_layout()
    return figure


def plot_attention_maps(images, maps, titles: Sequence[str], suptitle: str,
                        figsize_per_image=(2.6, 2.9)):
    """Each image with an attention map drawn over it: ``images`` (N, H, W, 3) uint8,
    ``maps`` (N, h, w) weights on the CNN's region grid (stretched over the image),
    one title per image. Introduced in notebook 06."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    images, maps = np.asarray(images), np.asarray(maps)
    if images.ndim != 4 or maps.ndim != 3 or not len(images) == len(maps) == len(titles):
        raise ValueError(f"need images (N, H, W, 3), maps (N, h, w) and N titles, got "
                         f"{images.shape}, {maps.shape} and {len(titles)} titles")
    count = len(images)
    figure, axes = plt.subplots(1, count, figsize=(figsize_per_image[0] * count,
                                                   figsize_per_image[1]), squeeze=False)
    for axis, image, weights, title in zip(axes[0], images, maps, titles, strict=True):
        height, width = image.shape[:2]
        axis.imshow(image)
        axis.imshow(weights, cmap="magma", alpha=0.55, extent=(0, width, height, 0),
                    interpolation="nearest")
        axis.set_title(title, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(suptitle)
    figure.tight_layout(rect=(0, 0, 1, 0.93))  # the top 7% for the suptitle, above the titles
    return figure


def plot_image_grid(images, titles, suptitle: str, row_labels: Sequence[str] | None = None,
                    figsize_per_image=(1.9, 2.2), title_colors=None):
    """Images in a grid: ``images`` (R, C, H, W, 3) uint8 with ``titles`` (R, C) strings, and
    an optional label to the left of each row (the query, for retrieval results).
    ``title_colors`` (R, C) names each title's colour (notebook 08: wrong captions in red).
    Introduced in notebook 07."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    images = np.asarray(images)
    if images.ndim != 5 or np.shape(titles) != images.shape[:2]:
        raise ValueError(f"need images (R, C, H, W, 3) and titles (R, C), got {images.shape} "
                         f"and {np.shape(titles)}")
    rows, columns = images.shape[:2]
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"need one row label per row ({rows}), got {len(row_labels)}")
    if title_colors is None:
        title_colors = np.full((rows, columns), "black")
    if np.shape(title_colors) != (rows, columns):
        raise ValueError(f"need title_colors (R, C) = {(rows, columns)}, got "
                         f"{np.shape(title_colors)}")
    figure, axes = plt.subplots(rows, columns, squeeze=False, figsize=(
        figsize_per_image[0] * columns + (1.6 if row_labels else 0), figsize_per_image[1] * rows))
    for r in range(rows):
        for c in range(columns):
            axis = axes[r][c]
            axis.imshow(images[r, c])
            axis.grid(False)
            axis.set_title(titles[r][c], fontsize=8, color=title_colors[r][c])
            axis.set_xticks([])
            axis.set_yticks([])
        if row_labels is not None:
            axes[r][0].set_ylabel(row_labels[r], fontsize=9, rotation=0, ha="right", va="center")
    figure.suptitle(suptitle)
    figure.tight_layout()
    return figure


def plot_similarity_matrices(matrices, labels: Sequence[str], titles: Sequence[str],
                             suptitle: str, figsize_per_matrix=(4.2, 4.4)):
    """Heatmaps of square similarity matrices side by side (rows: images, columns: their
    captions, in the same order, so a trained model shows a bright diagonal), with one
    shared colour scale from -1 to 1. Introduced in notebook 07."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    matrices = np.asarray(matrices)
    if matrices.ndim != 3 or matrices.shape[1:] != (len(labels), len(labels)) \
            or len(titles) != len(matrices):
        raise ValueError(f"need matrices (K, n, n), n labels and K titles, got "
                         f"{matrices.shape}, {len(labels)} labels and {len(titles)} titles")
    count = len(matrices)
    figure, axes = plt.subplots(1, count, squeeze=False, figsize=(
        figsize_per_matrix[0] * count + 1.5, figsize_per_matrix[1]))
    for index, (axis, matrix, title) in enumerate(zip(axes[0], matrices, titles, strict=True)):
        shown = axis.imshow(matrix, cmap="viridis", vmin=-1, vmax=1)
        axis.grid(False)  # grid lines would cut through the cells
        axis.set_title(title, fontsize=10)
        axis.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        axis.set_yticks(range(len(labels)), labels if index == 0 else [], fontsize=7)
        axis.set_xlabel("caption")
    axes[0][0].set_ylabel("image")
    figure.colorbar(shown, ax=list(axes[0]), shrink=0.8, label="cosine similarity")
    figure.suptitle(suptitle)
    return figure
