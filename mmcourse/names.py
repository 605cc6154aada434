"""The names the course's models, data and command line share, kept in one place.

A light module (it imports nothing), so the command line can offer these choices without
importing TensorFlow, and no two modules keep their own copy of a list.
"""

#: The two datasets (notebook 01): single objects, and scenes of two objects in relation.
LEVELS = ("attributes", "relations")
#: The files each dataset holds, one per task (notebook 01; retrieval from notebook 07).
DATA_TASKS = ("match", "qa", "retrieval")
#: The tasks ``models.build_model`` builds a classifier for (notebooks 04-06, exported in 10).
MODEL_TASKS = ("match", "qa")
#: Tasks trained outside ``build_model``: CLIP (notebook 07), the captioner and VQA by
#: generation (notebook 08).
NEW_TASKS = ("retrieval", "caption", "vqa")
VLM_TASKS = ("caption", "vqa")

#: The fusion methods, in the order notebook 04 teaches them (layers in ``mmcourse.matcher.fusion``).
FUSION_METHODS = ("image", "text", "concat", "multiply", "sum", "gated", "film", "bilinear",
                  "lowrank", "attention")
#: Notebook 06's relational models over pixels (layers in ``mmcourse.blocks``): the baseline, the
#: relation network, the transformer whose second hop is anchored to the named object, and the
#: transformer whose regions are also taught where the objects are (``mmcourse.data.cells``).
RELATIONAL_FUSIONS = ("cnn_mlp", "relation_network", "anchored", "transformer")
#: Notebook 06's contrast to pixels: a relation network over the object tokens of a classical
#: detector (``mmcourse.data.objects``, layer in ``mmcourse.matcher.object_relations``).
OBJECT_FUSIONS = ("objects",)
#: Every value of ``train --fusion`` for the image tasks.
FUSIONS = (*FUSION_METHODS, *RELATIONAL_FUSIONS, *OBJECT_FUSIONS)
#: The fusions that learn from what only the generated scenes give, with why: refused for a
#: folder of your own images (``train --data-dir``, notebook 09's ``train_folder``).
COURSE_SCENE_FUSIONS = {
    "objects": "it reads the course scenes' object tokens, found by a detector that knows "
               "their six colours (mmcourse.data.objects)",
    "transformer": "its regions learn where the objects are from the course scenes' cell "
                   "targets (mmcourse.data.cells)",
}

#: The course's own captioner architectures (notebook 08, ``mmcourse.vlm``).
CAPTION_ARCHS = ("llava", "flamingo")
#: The KerasHub family trained by ``train --task caption --arch paligemma`` (notebook 11).
HUB_CAPTION_ARCHS = ("paligemma",)
#: KerasHub's CLIP trained by ``train --task retrieval --arch keras_hub_clip`` (notebook 11).
HUB_RETRIEVAL_ARCHS = ("keras_hub_clip",)
