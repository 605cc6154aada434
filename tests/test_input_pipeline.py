"""The from-disk tf.data pipeline and the naive generator of notebook 05 (mmcourse.data.pipeline)."""

import numpy as np
import pytest

from mmcourse.data import pipeline

LIMIT = 96


def batches(dataset, count=3):
    return [((images.numpy(), ids.numpy()), labels.numpy())
            for (images, ids), labels in dataset.take(count)]


def assert_same_batches(first, second):
    assert len(first) == len(second)
    for ((images_a, ids_a), labels_a), ((images_b, ids_b), labels_b) in zip(first, second,
                                                                              strict=True):
        np.testing.assert_array_equal(images_a, images_b)
        np.testing.assert_array_equal(ids_a, ids_b)
        np.testing.assert_array_equal(labels_a, labels_b)


def test_disk_and_naive_pipelines_read_what_load_arrays_reads(course_data):
    from mmcourse.data import scenes as data
    from mmcourse.data import text

    images, texts, labels = data.load_arrays("match", "attributes", "val", course_data)
    token_ids = text.vectorize(texts[:32], root=course_data)
    for dataset in (pipeline.make_disk_dataset(split="val", batch_size=32, root=course_data,
                                               limit=LIMIT),
                    pipeline.make_naive_dataset(split="val", batch_size=32, root=course_data,
                                                limit=LIMIT)):
        (image_batch, ids), label_batch = batches(dataset, 1)[0]
        assert image_batch.dtype == np.float32 and image_batch.shape == (32, 64, 64, 3)
        np.testing.assert_allclose(image_batch, images[:32] / 255.0, atol=1e-6)
        np.testing.assert_array_equal(ids, token_ids)
        np.testing.assert_array_equal(label_batch, labels[:32])


def test_disk_pipeline_is_deterministic_under_a_seed_with_augmentation(course_data):
    def make(seed):
        return pipeline.make_disk_dataset(batch_size=32, augment=True, seed=seed,
                                          root=course_data, limit=LIMIT)

    assert_same_batches(batches(make(1)), batches(make(1)))
    first, other = batches(make(1), 1)[0], batches(make(2), 1)[0]
    assert not np.array_equal(first[0][0], other[0][0])


def test_switching_off_cache_prefetch_and_parallelism_changes_no_values(course_data):
    options = {"split": "val", "batch_size": 32, "root": course_data, "limit": LIMIT}
    assert_same_batches(batches(pipeline.make_disk_dataset(**options)),
                        batches(pipeline.make_disk_dataset(cache=False, prefetch=False,
                                                           parallel=False, **options)))


def test_bad_arguments_are_named(course_data):
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        pipeline.make_disk_dataset(batch_size=0, root=course_data)
    with pytest.raises(ValueError, match="limit must be a positive int or None, got -1"):
        pipeline.make_disk_dataset(root=course_data, limit=-1)
