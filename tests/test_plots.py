"""Learning curves, train-validation gap and confusion matrix (mmcourse.plots)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from mmcourse import plots

HISTORY = {"loss": [0.7, 0.5, 0.3], "val_loss": [0.7, 0.6, 0.65],
           "accuracy": [0.5, 0.7, 0.9], "val_accuracy": [0.5, 0.6, 0.62]}


class FakeHistory:  # what keras.callbacks.History looks like to plots
    history = HISTORY


def test_learning_curves_plot_train_and_validation_per_metric():
    figure = plots.plot_learning_curves(FakeHistory(), title="run")
    assert isinstance(figure, matplotlib.figure.Figure)
    loss_axis, accuracy_axis = figure.axes
    train, val = loss_axis.get_lines()
    np.testing.assert_allclose(train.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(train.get_ydata(), HISTORY["loss"])
    np.testing.assert_allclose(val.get_ydata(), HISTORY["val_loss"])
    np.testing.assert_allclose(accuracy_axis.get_lines()[1].get_ydata(),
                               HISTORY["val_accuracy"])
    assert accuracy_axis.get_ylabel() == "accuracy"
    plt.close(figure)


def test_learning_curves_name_a_missing_metric():
    with pytest.raises(ValueError, match="history has no \\['auc'\\]"):
        plots.plot_learning_curves(HISTORY, metrics=("loss", "auc"))
    with pytest.raises(TypeError, match="history must be"):
        plots.plot_learning_curves([0.1, 0.2])


def test_plot_histories_one_colour_per_run():
    figure = plots.plot_histories({"a": HISTORY, "b": FakeHistory()})
    train_axis, val_axis = figure.axes
    assert len(train_axis.get_lines()) == len(val_axis.get_lines()) == 2
    assert train_axis.get_lines()[0].get_color() == val_axis.get_lines()[0].get_color()
    plt.close(figure)


def test_train_val_gap():
    assert plots.train_val_gap(HISTORY) == pytest.approx(0.9 - 0.62)
    assert plots.train_val_gap(HISTORY, "loss", epoch=0) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no 'val_auc'"):
        plots.train_val_gap({"auc": [1.0]}, "auc")


def test_confusion_matrix_matches_a_reference_count():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    predictions = rng.integers(0, 4, 200)
    expected = np.zeros((4, 4), np.int64)
    for true, predicted in zip(labels, predictions, strict=True):
        expected[true, predicted] += 1
    np.testing.assert_array_equal(plots.confusion_matrix(labels, predictions), expected)
    # (N, C) scores are reduced with argmax; sigmoid outputs are thresholded at 0.5
    scores = np.eye(4)[predictions]
    np.testing.assert_array_equal(plots.confusion_matrix(labels, scores, 4), expected)
    binary = plots.confusion_matrix(np.array([0.0, 1.0, 1.0]), np.array([[0.2], [0.7], [0.4]]))
    np.testing.assert_array_equal(binary, [[1, 0], [1, 1]])


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="differ in length: 2 and 3"):
        plots.confusion_matrix([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="num_classes=2"):
        plots.confusion_matrix([0, 2], [0, 1], num_classes=2)


def test_plot_confusion_matrix_writes_counts_and_fractions():
    figure = plots.plot_confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], class_names=["no", "yes"])
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert texts == ["1", "1", "0", "2"]
    plt.close(figure)
    figure = plots.plot_confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], normalize=True)
    assert [t.get_text() for t in figure.axes[0].texts] == ["0.50", "0.50", "0.00", "1.00"]
    plt.close(figure)


def test_bars_by_type_draw_means_and_errors():
    import matplotlib

    matplotlib.use("Agg")
    from mmcourse.plots import plot_bars_by_type

    figure = plot_bars_by_type({"a": {"x": [0.5, 0.7], "y": [1.0]}, "b": {"x": [0.2], "y": [0.4]}},
                               ["x", "y"], "a beats b", chance={"x": 0.5})
    axis = figure.axes[0]
    heights = sorted(round(p.get_height(), 6) for p in axis.patches)
    assert heights == [0.2, 0.4, 0.6, 1.0]  # means over the seeds
    assert axis.get_title() == "a beats b" and axis.get_ylabel() == "test accuracy"
    with pytest.raises(ValueError, match=r"runs\['b'\] has no values for \['z'\]"):
        plot_bars_by_type({"a": {"z": [1]}, "b": {"x": [1]}}, ["z"], "t")


def test_bars_by_type_cut_their_error_bars_at_0_and_1_and_keep_the_legend_off_the_bars():
    import matplotlib

    matplotlib.use("Agg")
    from mmcourse.plots import plot_bars_by_type

    # mean 0.9, sample std 0.1732 by hand: the bar reaches 0.7268 below and 1.0 above, not 1.0732
    figure = plot_bars_by_type({"a": {"x": [1.0, 1.0, 0.7], "y": [0.0, 0.1, 0.2]}},
                               ["x", "y"], "t")
    axis = figure.axes[0]
    figure.canvas.draw()
    (caps,) = [c for c in axis.containers if hasattr(c, "lines")][:1]
    segments = caps.lines[2][0].get_segments()
    (low_x, high_x), (low_y, high_y) = ([s[0][1], s[1][1]] for s in segments)
    assert round(low_x, 4) == 0.7268 and high_x == 1.0
    assert round(low_y, 6) == 0.0 and round(high_y, 4) == 0.2  # mean 0.1, std 0.1: cut at 0 below
    legend = axis.get_legend().get_window_extent()
    assert legend.y0 >= axis.get_window_extent().y1 - 1  # above the axes, not over the bars


def test_attention_maps_check_their_shapes():
    import matplotlib

    matplotlib.use("Agg")
    from mmcourse.plots import plot_attention_maps

    images = np.zeros((2, 64, 64, 3), np.uint8)
    figure = plot_attention_maps(images, np.ones((2, 8, 8)) / 64, ["a", "b"], "where it looked")
    assert len(figure.axes) == 2 and figure.axes[1].get_title() == "b"
    # two-line panel titles, as notebook 06 draws them: the suptitle keeps clear of them
    figure = plot_attention_maps(images, np.ones((2, 8, 8)) / 64,
                                 ["nearest colour, red: anchor\n(answer circle)", "b\nc"], "t")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    top_of_titles = max(axis.title.get_window_extent(renderer).y1 for axis in figure.axes)
    assert figure._suptitle.get_window_extent(renderer).y0 - top_of_titles >= 8  # pixels
    with pytest.raises(ValueError, match="N titles"):
        plot_attention_maps(images, np.ones((2, 8, 8)), ["a"], "t")


def test_image_grid_lays_out_rows_with_titles_and_labels():
    images = np.zeros((2, 3, 8, 8, 3), np.uint8)
    titles = [["a", "b", "c"], ["d", "e", "f"]]
    figure = plots.plot_image_grid(images, titles, "grid", row_labels=["query 1", "query 2"])
    axes = figure.axes
    assert len(axes) == 6
    assert [axis.get_title() for axis in axes] == ["a", "b", "c", "d", "e", "f"]
    assert axes[0].get_ylabel() == "query 1" and axes[3].get_ylabel() == "query 2"
    plt.close(figure)
    with pytest.raises(ValueError, match=r"titles \(R, C\)"):
        plots.plot_image_grid(images, [["a"]], "grid")
    with pytest.raises(ValueError, match=r"one row label per row \(2\), got 1"):
        plots.plot_image_grid(images, titles, "grid", row_labels=["only one"])
    colours = [["red", "black", "black"], ["black", "black", "red"]]
    figure = plots.plot_image_grid(images, titles, "grid", title_colors=colours)
    assert [matplotlib.colors.to_hex(axis.title.get_color()) for axis in figure.axes] == [
        "#ff0000", "#000000", "#000000", "#000000", "#000000", "#ff0000"]
    plt.close(figure)
    with pytest.raises(ValueError, match=r"title_colors \(R, C\) = \(2, 3\), got \(1, 3\)"):
        plots.plot_image_grid(images, titles, "grid", title_colors=[["red"] * 3])


def test_similarity_matrices_share_one_colour_scale():
    matrices = np.stack([np.eye(3), -np.eye(3)])
    figure = plots.plot_similarity_matrices(matrices, ["x", "y", "z"], ["start", "end"], "m")
    images = [axis.images[0] for axis in figure.axes if axis.images]
    assert len(images) == 2 and all(image.get_clim() == (-1, 1) for image in images)
    assert [tick.get_text() for tick in figure.axes[0].get_xticklabels()] == ["x", "y", "z"]
    plt.close(figure)
    with pytest.raises(ValueError, match=r"matrices \(K, n, n\), n labels and K titles"):
        plots.plot_similarity_matrices(matrices, ["x", "y"], ["start", "end"], "m")


def test_house_style_sets_readable_defaults():
    plots.use_house_style()
    assert matplotlib.rcParams["font.size"] == 10
    assert tuple(matplotlib.rcParams["figure.figsize"]) == (7.0, 4.0)
    assert matplotlib.rcParams["axes.grid"] is True


def test_label_axes_sets_all_three_and_rejects_empty_labels():
    figure, axis = plt.subplots()
    plots.label_axes(axis, "epoch", "loss (nats)", "the loss falls")
    assert (axis.get_xlabel(), axis.get_ylabel(), axis.get_title()) == (
        "epoch", "loss (nats)", "the loss falls")
    with pytest.raises(ValueError, match="ylabel must be a non-empty string, got ''"):
        plots.label_axes(axis, "epoch", "", "title")
    with pytest.raises(ValueError, match="title must be a non-empty string, got None"):
        plots.label_axes(axis, "epoch", "loss", None)
    plt.close(figure)


def test_seed_comparison_draws_mean_and_sample_std_per_row():
    runs = {"concat": [0.99, 0.97, 0.98], "sum": [0.5]}
    figure = plots.plot_seed_comparison(runs, xlabel="test accuracy", title="t", reference=0.5)
    axis = figure.axes[0]
    # error bars: mean 0.98 with sample std 0.01 (hand-computed) on the top row (y = 1)
    bars = [c for c in axis.containers if isinstance(c, matplotlib.container.ErrorbarContainer)]
    (concat_x, concat_y), (sum_x, sum_y) = (b.lines[0].get_xydata()[0] for b in bars)
    assert concat_x == pytest.approx(0.98) and concat_y == 1
    assert sum_x == pytest.approx(0.5) and sum_y == 0
    segment = bars[0].lines[2][0].get_segments()[0]
    assert segment[0][0] == pytest.approx(0.97) and segment[1][0] == pytest.approx(0.99)
    labels = {tick: label.get_text()
              for tick, label in zip(axis.get_yticks(), axis.get_yticklabels(), strict=True)}
    assert labels == {1: "concat (n=3)", 0: "sum (n=1)"}  # the first name on top
    assert axis.get_title() == "t" and axis.get_xlabel() == "test accuracy"
    # the legend names the dots, the bars and the reference line, each once
    assert sorted(text.get_text() for text in axis.get_legend().get_texts()) == [
        "chance", "mean ± 1 std over seeds", "one seed"]
    plt.close(figure)
    with pytest.raises(ValueError, match="runs\\['x'\\] must be a non-empty 1-D sequence"):
        plots.plot_seed_comparison({"x": []}, xlabel="a", title="b")


def test_mean_curve_averages_the_runs_that_reached_each_epoch():
    means, stds = plots.mean_curve([[1.0, 2.0, 3.0], [3.0, 4.0]])
    np.testing.assert_allclose(means, [2.0, 3.0, 3.0])
    np.testing.assert_allclose(stds, [np.sqrt(2), np.sqrt(2), 0.0])  # sample std of (1, 3)
    with pytest.raises(ValueError, match="runs must be a non-empty list"):
        plots.mean_curve([])


def test_mean_curves_plot_one_line_per_name_and_the_reference():
    figure = plots.plot_mean_curves({"a": [[0.7, 0.5], [0.7, 0.3]], "b": [[0.69, 0.69]]},
                                    ylabel="loss (nats)", title="t", reference=np.log(2))
    axis = figure.axes[0]
    a_line, b_line, chance = axis.get_lines()
    np.testing.assert_allclose(a_line.get_ydata(), [0.7, 0.4])
    np.testing.assert_allclose(a_line.get_xdata(), [1, 2])
    assert a_line.get_label() == "a (n=2)" and b_line.get_label() == "b (n=1)"
    np.testing.assert_allclose(chance.get_ydata(), [np.log(2)] * 2)
    plt.close(figure)


def test_mean_curves_draw_a_named_curve_dashed_so_one_on_top_of_another_shows():
    same = [[0.7, 0.5]]
    figure = plots.plot_mean_curves({"baseline": same, "early stopping": same}, ylabel="loss",
                                    title="t", linestyles={"early stopping": "--"})
    baseline, early = figure.axes[0].get_lines()
    assert baseline.get_linestyle() == "-" and early.get_linestyle() == "--"
    plt.close(figure)
    with pytest.raises(ValueError, match=r"not drawn: \['other'\]"):
        plots.plot_mean_curves({"a": same}, ylabel="l", title="t", linestyles={"other": "--"})


def test_confusion_matrix_has_no_grid_lines_across_its_cells_in_the_house_style():
    plots.use_house_style()
    figure = plots.plot_confusion_matrix([0, 1, 1], [0.2, 0.9, 0.1], class_names=["no", "yes"])
    axis = figure.axes[0]
    assert not any(line.get_visible() for line in axis.get_xgridlines() + axis.get_ygridlines())
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("predicted class", "true class")
    plt.close(figure)
