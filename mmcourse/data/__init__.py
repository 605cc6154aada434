"""The course's data: generated scenes and sentences, text vocabularies, the image contract, your
own folders, splits on disk, audio and video clips, augmentation and tf.data pipelines
(notebooks 01, 04, 09, 13). Nothing here builds or trains a model."""
