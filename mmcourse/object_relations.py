"""The relation network over object tokens: the ``objects`` fusion (notebook 06).

Santoro et al. (2017) also ran their relation network on *state descriptions*: a table of
each object's colour, shape and position instead of pixels. Here the table comes from a
classical detector (``mmcourse.objects``), and the relation network reasons over it:

    RN(O, q) = sum over present pairs (i, j) of g([o_i; o_j; q])

which is ``mmcourse.relations.RelationModule`` with the padding slots left out of the sum
(each token's last feature says whether it holds an object). Keras is imported at module
level, as in ``mmcourse.relations``: the layer is registered for ``.keras`` saving, and
``mmcourse.models`` imports this module inside its functions.
"""

from __future__ import annotations

import keras
from keras import ops

from mmcourse.relations import RelationModule


@keras.saving.register_keras_serializable(package="mmcourse")
class ObjectRelationModule(RelationModule):
    """``RelationModule`` over object tokens (batch, n, d) whose feature ``presence_index``
    is 1 for an object and 0 for a padding slot: g of a pair counts only when both of its
    tokens are objects, so two objects padded to four slots give the same sum as the same
    two objects alone. Output (batch, units). Introduced in notebook 06."""

    def __init__(self, units: int = 64, depth: int = 3, presence_index: int = -1, **kwargs):
        super().__init__(units, depth, **kwargs)
        if isinstance(presence_index, bool) or not isinstance(presence_index, int):
            raise ValueError(f"presence_index must be an int, got {presence_index!r}")
        self.presence_index = presence_index

    def call(self, inputs):
        tokens, _ = inputs
        present = tokens[:, :, self.presence_index]  # (B, n)
        both = present[:, :, None] * present[:, None, :]  # (B, n, n)
        return ops.sum(self.pairs(inputs) * both[..., None], axis=(1, 2))

    def get_config(self):
        return {**super().get_config(), "presence_index": self.presence_index}
