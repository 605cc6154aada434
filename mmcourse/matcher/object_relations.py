"""The relation network over object tokens: the ``objects`` fusion (notebook 06).

Santoro et al. (2017) also ran their relation network on *state descriptions*: a table of
each object's colour, shape and position instead of pixels. Here the table comes from a
classical detector (``mmcourse.data.objects``), and the relation network reasons over it:

    RN(O, q) = sum over present pairs (i, j) of g([o_i; o_j; p_j - p_i; |p_j - p_i|; q])

which is ``mmcourse.blocks.RelationModule`` with two changes: the padding slots are left
out of the sum (each token's last feature says whether it holds an object), and g also sees
each pair's offset and distance, computed from the tokens' centres p = (x, y). Without
them, g has to learn a Euclidean distance from x and y through its ReLUs, and "the object
nearest to the red one" stays hard (one exploratory run, qa seed 0, 20 epochs: relational
accuracy 0.77 without them, 0.88 with; docs/results/objects_table.jsonl has the per-seed
runs of the model as built). Keras is imported at module
level, as in ``mmcourse.blocks``: the layer is registered for ``.keras`` saving, and
``mmcourse.matcher.model`` imports this module inside its functions.
"""

from __future__ import annotations

import keras
from keras import ops

from mmcourse.blocks import RelationModule


@keras.saving.register_keras_serializable(package="mmcourse")
class ObjectRelationModule(RelationModule):
    """``RelationModule`` over object tokens (batch, n, d) whose feature ``presence_index``
    is 1 for an object and 0 for a padding slot: g of a pair counts only when both of its
    tokens are objects, so two objects padded to four slots give the same sum as the same
    two objects alone. With ``centre_index`` k (features k and k + 1 are x and y), g's first
    layer also gets W_g [x_j - x_i; y_j - y_i; |p_j - p_i|] (3 x units more weights; the
    distance is sqrt(|p_j - p_i|^2 + 1e-6), so its gradient stays finite when i = j).
    Output (batch, units). Introduced in notebook 06."""

    def __init__(self, units: int = 64, depth: int = 3, presence_index: int = -1,
                 centre_index=None, **kwargs):
        super().__init__(units, depth, **kwargs)
        for name, value in (("presence_index", presence_index),
                            ("centre_index", -1 if centre_index is None else centre_index)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an int, got {value!r}")
        self.presence_index = presence_index
        self.centre_index = centre_index

    def build(self, input_shape):
        super().build(input_shape)
        if self.centre_index is not None:  # W_g [dx, dy, distance]: 3 x units
            self.geometry_kernel = self.add_weight(shape=(3, self.units),
                                                   initializer="glorot_uniform",
                                                   name="geometry_kernel")

    def pairs(self, inputs):
        """g on every pair before the sum: (batch, n, n, units)."""
        if self.centre_index is None:
            return super().pairs(inputs)
        tokens, question = inputs
        if not self.built:
            self.build([tuple(tokens.shape), tuple(question.shape)])
            self.built = True
        centres = tokens[:, :, self.centre_index:self.centre_index + 2]  # (B, n, 2)
        offset = centres[:, None, :, :] - centres[:, :, None, :]  # p_j - p_i: (B, n, n, 2)
        distance = ops.sqrt(ops.sum(ops.square(offset), axis=-1, keepdims=True) + 1e-6)
        geometry = ops.matmul(ops.concatenate([offset, distance], axis=-1),
                              self.geometry_kernel)
        first = ops.matmul(tokens, self.first_kernel)
        second = ops.matmul(tokens, self.second_kernel)
        condition = ops.matmul(question, self.question_kernel) + self.bias
        hidden = ops.relu(first[:, :, None, :] + second[:, None, :, :] + geometry
                          + condition[:, None, None, :])
        for layer in self.pair_layers:
            hidden = layer(hidden)
        return hidden

    def call(self, inputs):
        tokens, _ = inputs
        present = tokens[:, :, self.presence_index]  # (B, n)
        both = present[:, :, None] * present[:, None, :]  # (B, n, n)
        return ops.sum(self.pairs(inputs) * both[..., None], axis=(1, 2))

    def get_config(self):
        return {**super().get_config(), "presence_index": self.presence_index,
                "centre_index": self.centre_index}


@keras.saving.register_keras_serializable(package="mmcourse")
class ObjectPairReadout(keras.layers.Layer):
    """Find the two objects a statement names, then read out the pair (notebook 06).

    A match statement ("a red circle left of a blue square", "the red circle is nearest to
    the blue square") names an object a, names an object b, and relates them. Over object
    tokens o_1..o_n (batch, n, d) with centres p_j, M_j = 0 for an object and -1e9 for a
    padding slot (presence m_j = 0), and the statement
    vector q (batch, d_q):

        w^a = softmax_j(q W_a . (o_j W_k + b_k) / sqrt(u) + M_j)          hop 1: find a
        w^b = softmax_j(q W_b . (o_j W_k + b_k) / sqrt(u) + M_j)          hop 1: find b
        o_a = sum_j w^a_j o_j,  o_b likewise,  p_a, p_b their centres
        N_jk = softmax_k(-tau |p_k - p_j| + M_k), k != j              j's nearest other object
        F_jk = softmax_k(+tau |p_k - p_j| + M_k), k != j              j's furthest
        near = sum_j w^b_j N_j,  far = sum_j w^b_j F_j                  anchored hop from b
        out = MLP([o_a; o_b; w^a . near; w^a . far; p_b - p_a; |p_b - p_a|; q])

    so "a is nearest to b" is w^a . near, the weight of the slot both found (1 when a is
    b's nearest other object), and "a left of b" is the sign of p_b - p_a, which the MLP
    (``depth`` ReLU layers of ``units``) compares with the relation q names. ``tau``
    (default 30, centres in [-1, 1]) makes the distance hops near-hard: the generator states
    nearest/furthest only with a margin of 5 pixels, 0.16 in these units, so the runner-up
    gets e^-4.8 of the weight. Inputs ``[tokens, question]`` as in ``ObjectRelationModule``;
    ``presence_index`` and ``centre_index`` (features k, k + 1 are x, y) index the tokens.
    Output (batch, units). ``weights_of(inputs)`` returns (w^a, w^b, near, far), each
    (batch, n). Introduced in notebook 06."""

    def __init__(self, units: int = 64, depth: int = 2, centre_index: int = 0,
                 presence_index: int = -1, tau: float = 30.0, read_neighbours: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(read_neighbours, bool):
            raise ValueError(f"read_neighbours must be True or False, got {read_neighbours!r}")
        self.read_neighbours = read_neighbours
        for name, value in (("units", units), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name, value in (("centre_index", centre_index), ("presence_index", presence_index)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an int, got {value!r}")
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or tau <= 0:
            raise ValueError(f"tau must be a positive number, got {tau!r}")
        self.units, self.depth, self.tau = units, depth, float(tau)
        self.centre_index, self.presence_index = centre_index, presence_index
        self.mlp = [keras.layers.Dense(units, activation="relu", name=f"readout_{i}",
                                       dtype=self.dtype_policy) for i in range(depth)]

    def build(self, input_shape):
        tokens_shape, question_shape = (tuple(s) for s in input_shape)
        if len(tokens_shape) != 3 or len(question_shape) != 2:
            raise ValueError(f"ObjectPairReadout takes [tokens (batch, n, d), question "
                             f"(batch, d_q)], got {tokens_shape} and {question_shape}")
        d, d_q = tokens_shape[-1], question_shape[-1]
        self.key_kernel = self.add_weight(shape=(d, self.units), name="key_kernel",
                                          initializer="glorot_uniform")
        self.key_bias = self.add_weight(shape=(self.units,), name="key_bias",
                                        initializer="zeros")
        self.query_a_kernel = self.add_weight(shape=(d_q, self.units), name="query_a_kernel",
                                              initializer="glorot_uniform")
        self.query_b_kernel = self.add_weight(shape=(d_q, self.units), name="query_b_kernel",
                                              initializer="glorot_uniform")
        width = (4 if self.read_neighbours else 2) * d + 5 + d_q
        for layer in self.mlp:
            layer.build((None, width))
            width = self.units

    def weights_of(self, inputs):
        """(w^a, w^b, near, far): the four attention weights over the slots, (batch, n)."""
        tokens, question = inputs
        present = tokens[:, :, self.presence_index]
        log_present = (present - 1.0) * 1e9  # 0 for an object, -1e9 for a padding slot
        keys = ops.matmul(tokens, self.key_kernel) + self.key_bias  # (B, n, u)

        def find(kernel):
            query = ops.matmul(question, kernel)  # (B, u)
            scores = ops.sum(keys * query[:, None, :], axis=-1) / self.units ** 0.5
            return ops.softmax(scores + log_present, axis=-1)

        w_a, w_b = find(self.query_a_kernel), find(self.query_b_kernel)
        centres = tokens[:, :, self.centre_index:self.centre_index + 2]
        offset = centres[:, None, :, :] - centres[:, :, None, :]  # p_k - p_j: (B, n, n, 2)
        distance = ops.sqrt(ops.sum(ops.square(offset), axis=-1) + 1e-6)  # (B, j, k)
        n = ops.shape(tokens)[1]
        others = log_present[:, None, :] - 1e9 * ops.eye(n)[None]  # k present, k != j
        near = ops.softmax(-self.tau * distance + others, axis=-1)  # j's nearest k
        far = ops.softmax(self.tau * distance + others, axis=-1)  # j's furthest k
        near = ops.einsum("bj,bjk->bk", w_b, near)  # b's nearest other object
        far = ops.einsum("bj,bjk->bk", w_b, far)
        return w_a, w_b, near, far

    def call(self, inputs):
        tokens, question = inputs
        w_a, w_b, near, far = self.weights_of(inputs)

        def read(weights):
            return ops.sum(weights[:, :, None] * tokens, axis=1)  # (B, d)

        o_a, o_b = read(w_a), read(w_b)
        k = self.centre_index
        offset = o_b[:, k:k + 2] - o_a[:, k:k + 2]
        distance = ops.sqrt(ops.sum(ops.square(offset), axis=-1, keepdims=True) + 1e-6)
        a_is_near = ops.sum(w_a * near, axis=-1, keepdims=True)  # a the slot b's hop found
        a_is_far = ops.sum(w_a * far, axis=-1, keepdims=True)
        parts = [o_a, o_b, a_is_near, a_is_far, offset, distance, question]
        if self.read_neighbours:  # qa: the answer is a property of b's nearest or furthest
            parts += [read(near), read(far)]
        hidden = ops.concatenate(parts, axis=-1)
        for layer in self.mlp:
            hidden = layer(hidden)
        return hidden

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "depth": self.depth,
                "centre_index": self.centre_index, "presence_index": self.presence_index,
                "tau": self.tau, "read_neighbours": self.read_neighbours}


@keras.saving.register_keras_serializable(package="mmcourse")
class WordSlots(keras.layers.Layer):
    """Read a statement into ``slots`` word slots by position (notebook 06).

    Each slot s has one learned logit per word position t (``RandomNormal(3)`` at the start:
    each slot starts on a few positions, and the slots differ from the first step); over the
    non-padding words (token id > 0):

        a_s = softmax_t(l_{s,t} + log [id_t > 0]),   slot_s = sum_t a_{s,t} e_t

    Inputs ``[embedded (batch, L, d), token_ids (batch, L)]``, L at most ``max_length``
    (the logits of positions past L are not used); output (batch, slots, d).
    A slot that settles on positions 1-2 holds "red circle" apart from the other object's
    words, which an LSTM's final state mixes: the match model's pointers then start from a
    clean query (issue 25: with the LSTM, match learned nothing about two-object
    statements). ``weights_of(inputs)`` returns a (batch, slots, L). Introduced in notebook 06.
    """

    def __init__(self, slots: int = 4, max_length: int = 32, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("slots", slots), ("max_length", max_length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.slots, self.max_length = slots, max_length

    def build(self, input_shape):
        embedded_shape, ids_shape = (tuple(s) for s in input_shape)
        if len(embedded_shape) != 3 or len(ids_shape) != 2 or \
                embedded_shape[1] != ids_shape[1] or (ids_shape[1] or 0) > self.max_length:
            raise ValueError(f"WordSlots takes [embedded (batch, L, d), token_ids (batch, L)] "
                             f"with L <= max_length={self.max_length}, got {embedded_shape} and "
                             f"{ids_shape}")
        self.position_logits = self.add_weight(
            shape=(self.slots, self.max_length), name="position_logits",
            initializer=keras.initializers.RandomNormal(stddev=3.0))

    def weights_of(self, inputs):
        _, token_ids = inputs
        words = ops.cast(token_ids > 0, self.compute_dtype)
        length = ops.shape(token_ids)[1]
        logits = self.position_logits[None, :, :length] + ops.log(ops.maximum(words, 1e-9))[:, None, :]
        return ops.softmax(logits, axis=-1)

    def call(self, inputs):
        embedded, _ = inputs
        return ops.matmul(self.weights_of(inputs), embedded)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.slots, input_shape[0][-1])

    def get_config(self):
        return {**super().get_config(), "slots": self.slots, "max_length": self.max_length}


def statement_layers(vocabulary_size: int, embedding_dim: int = 32, slots: int = 4):
    """The two layers that read a statement or question: ``Embedding(vocabulary_size,
    embedding_dim)`` named ``word_embedding`` (``RandomNormal(1)``) and ``WordSlots(slots)``
    named ``word_slots``. Introduced in notebook 06."""
    embedding = keras.layers.Embedding(
        vocabulary_size, embedding_dim, name="word_embedding",
        embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0))
    return embedding, WordSlots(slots, name="word_slots")


def statement_slots(token_ids, vocabulary_size: int, embedding_dim: int = 32, slots: int = 4):
    """The statement or question as one vector, from the Keras tensor ``token_ids`` (batch,
    L), L <= 32: ``Flatten(WordSlots(slots)([Embedding(vocabulary_size, embedding_dim)
    (token_ids), token_ids]))`` (``statement_layers``), (batch, slots embedding_dim).
    Introduced in notebook 06."""
    embedding, word_slots = statement_layers(vocabulary_size, embedding_dim, slots)
    read = word_slots([embedding(token_ids), token_ids])
    return keras.layers.Flatten(name="statement")(read)


def match_features(tokens, token_ids, vocabulary_size: int, embedding_dim: int = 32,
                   width: int = 64, centre_index: int = 0, slots: int = 4,
                   read_neighbours: bool = False):
    """The ``objects`` fusion's fused vector (notebook 06), from the Keras tensors
    ``tokens`` (batch, n, d) and ``token_ids`` (batch, L), L <= 32:

        q = statement_slots(token_ids, vocabulary_size, embedding_dim, slots)
        fused = [ObjectRelationModule(width)([tokens, q]); ObjectPairReadout(width)([tokens, q])]

    The relation module counts ("there are three objects"); the pair read-out finds the two
    named objects and relates them, and with ``read_neighbours`` (qa) also reads the named
    object's nearest and furthest neighbours, whose colour or shape is the answer.
    Output (batch, 2 width)."""
    statement = statement_slots(token_ids, vocabulary_size, embedding_dim, slots)
    counted = ObjectRelationModule(width, centre_index=centre_index, name="fusion")(
        [tokens, statement])
    paired = ObjectPairReadout(width, centre_index=centre_index,
                               read_neighbours=read_neighbours, name="pair")(
        [tokens, statement])
    return keras.layers.Concatenate(name="pair_and_relations")([counted, paired])


# --- the same read-out over pixels: a region grid taught where the objects are ------------


@keras.saving.register_keras_serializable(package="mmcourse")
class CellObjects(keras.layers.Layer):
    """Turn each region's predictions into an object token (notebook 06).

    Input (batch, G*G, colours + 1 + shapes + 2): for each cell of a G x G grid (row-major),
    the logits of "which colour has the object centred here" (index 0: none), the logits
    of its shape, and its centre's offset (dx, dy) from the cell's centre in cells, which
    ``mmcourse.data.cells`` teaches. Outputs ``[tokens, counts]``:

        c = softmax(colour logits),  s = softmax(shape logits)
        present = [c_0 < 0.5]                       (no gradient: a hard 0/1)
        x = (column + 1/2 + dx) 2/G - 1,  y = (row + 1/2 + dy) 2/G - 1
        token = [c_1..c_colours; s; x; y; present]  (batch, G*G, colours + shapes + 3)
        counts = sum over cells of present s        (batch, shapes): objects of each shape

    so ``ObjectPairReadout(centre_index=colours + shapes)`` reads them as it reads the
    detector's tokens. Introduced in notebook 06."""

    def __init__(self, grid: int = 8, colours: int = 6, shapes: int = 3, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("grid", grid), ("colours", colours), ("shapes", shapes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.grid, self.colours, self.shapes = grid, colours, shapes

    @property
    def centre_index(self) -> int:
        """Where x sits in a token (y follows)."""
        return self.colours + self.shapes

    def call(self, predictions):
        c = self.colours + 1
        colour = ops.softmax(predictions[..., :c], axis=-1)
        shape = ops.softmax(predictions[..., c:c + self.shapes], axis=-1)
        offset = predictions[..., c + self.shapes:c + self.shapes + 2]
        cell = ops.arange(self.grid * self.grid)
        column = ops.cast(cell % self.grid, self.compute_dtype)
        row = ops.cast(cell // self.grid, self.compute_dtype)
        x = (column + 0.5 + offset[..., 0]) * (2.0 / self.grid) - 1.0
        y = (row + 0.5 + offset[..., 1]) * (2.0 / self.grid) - 1.0
        present = ops.stop_gradient(ops.cast(colour[..., 0] < 0.5, self.compute_dtype))
        tokens = ops.concatenate([colour[..., 1:], shape, x[..., None], y[..., None],
                                  present[..., None]], axis=-1)
        counts = ops.sum(present[..., None] * shape, axis=1)
        return [tokens, counts]

    def compute_output_shape(self, input_shape):
        batch, cells = input_shape[0], input_shape[1]
        return [(batch, cells, self.colours + self.shapes + 3), (batch, self.shapes)]

    def get_config(self):
        return {**super().get_config(), "grid": self.grid, "colours": self.colours,
                "shapes": self.shapes}


@keras.saving.register_keras_serializable(package="mmcourse")
class CellLoss(keras.losses.Loss):
    """The loss of ``CellObjects``' input against ``mmcourse.data.cells`` targets (notebook
    06). Targets (batch, G, G, 4): colour class (0 none), shape, dx, dy; predictions
    (batch, G*G, colours + 1 + shapes + 2). Per example:

        mean over cells of CE(colour)
        + sum over centre cells of [CE(shape) + |offset - (dx, dy)|^2] / (centres + 1)

    so every cell learns whether an object is centred in it, and only those cells learn a
    shape and an offset. Introduced in notebook 06."""

    def __init__(self, colours: int = 6, shapes: int = 3, name: str = "cell_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.colours, self.shapes = colours, shapes

    def call(self, y_true, y_pred):
        c = self.colours + 1
        y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), (ops.shape(y_pred)[0], -1, 4))
        colour, shape, offset = y_true[..., 0], y_true[..., 1], y_true[..., 2:4]
        centre = ops.cast(colour > 0, y_pred.dtype)
        colour_loss = keras.losses.sparse_categorical_crossentropy(
            colour, y_pred[..., :c], from_logits=True)
        shape_loss = keras.losses.sparse_categorical_crossentropy(
            shape, y_pred[..., c:c + self.shapes], from_logits=True)
        offset_loss = ops.sum(ops.square(offset - y_pred[..., c + self.shapes:c + self.shapes + 2]),
                              axis=-1)
        centred = ops.sum(centre * (shape_loss + offset_loss), axis=-1)
        return ops.mean(colour_loss, axis=-1) + centred / (ops.sum(centre, axis=-1) + 1.0)

    def get_config(self):
        return {**super().get_config(), "colours": self.colours, "shapes": self.shapes}


@keras.saving.register_keras_serializable(package="mmcourse")
class SceneQuestions(keras.layers.Layer):
    """Move between a batch of S scenes with Q questions each and a batch of S*Q questions
    (notebook 06; ``mmcourse.matcher.model.cell_trainer``). ``mode``:

    - ``"repeat"``: (S, ...) -> (S*Q, ...), each scene's row once per question;
    - ``"fold"``: (S, Q, ...) -> (S*Q, ...);
    - ``"unfold"``: (S*Q, ...) -> (S, Q, ...).

    Rows stay in order: question q of scene s is row s*Q + q. Introduced in notebook 06."""

    MODES = ("repeat", "fold", "unfold")

    def __init__(self, questions: int, mode: str, **kwargs):
        super().__init__(**kwargs)
        if isinstance(questions, bool) or not isinstance(questions, int) or questions < 1:
            raise ValueError(f"questions must be a positive int, got {questions!r}")
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.questions, self.mode = questions, mode

    def call(self, inputs):
        if self.mode == "repeat":
            return ops.repeat(inputs, self.questions, axis=0)
        shape = ops.shape(inputs)
        if self.mode == "fold":
            return ops.reshape(inputs, (-1, *shape[2:]))
        return ops.reshape(inputs, (-1, self.questions, *shape[1:]))

    def compute_output_shape(self, input_shape):
        batch = None
        if self.mode == "fold":
            return (batch, *input_shape[2:])
        if self.mode == "unfold":
            return (batch, self.questions, *input_shape[1:])
        return (batch, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "questions": self.questions, "mode": self.mode}
