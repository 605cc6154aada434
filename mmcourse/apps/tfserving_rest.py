"""TensorFlow Serving's REST format for an exported model (notebook 10): ``rest_request``
writes the JSON body of ``POST /v1/models/NAME:predict``, ``rest_response`` answers it as
TensorFlow Serving does, with the SavedModel's signature.
"""

from __future__ import annotations

import base64

from mmcourse.apps.deploy import SIGNATURE
from mmcourse.apps.predictors import image_bytes


def rest_request(images, texts) -> dict:
    """The JSON body TensorFlow Serving's REST API takes for the exported signature
    (``POST /v1/models/NAME:predict``): binary inputs as ``{"b64": ...}``.
    Introduced in notebook 10."""
    encoded = image_bytes(images)
    return {"signature_name": SIGNATURE, "instances": [
        {"image": {"b64": base64.b64encode(data).decode("ascii")}, "text": caption}
        for data, caption in zip(encoded, texts, strict=True)]}


def rest_response(signature, request: dict) -> dict:
    """What TensorFlow Serving answers for ``request`` (a dict, e.g. ``json.loads`` of the
    body): the instances decoded as the server does (``{"b64": s}`` -> bytes), the signature
    called, ``{"predictions": [{"probability": p}, ...]}`` (a qa model: ``{"answer": word,
    "probability": p, "probabilities": [...]}``; strings as UTF-8 text, as the server writes
    them). Introduced in notebook 10."""
    import tensorflow as tf

    if request.get("signature_name", SIGNATURE) != SIGNATURE:
        raise ValueError(f"signature_name must be {SIGNATURE!r}, got "
                         f"{request.get('signature_name')!r}")
    instances = request.get("instances")
    if not isinstance(instances, list) or not instances:
        raise ValueError("request must hold a non-empty list 'instances'")

    def decoded(value):
        return base64.b64decode(value["b64"]) if isinstance(value, dict) else \
            str(value).encode("utf-8")

    columns = {name: tf.constant([decoded(instance[name]) for instance in instances])
               for name in ("image", "text")}
    outputs = signature(**columns)
    rows = {name: [value.decode("utf-8") if isinstance(value, bytes) else value
                   for value in tensor.numpy().tolist()] for name, tensor in outputs.items()}
    return {"predictions": [{name: rows[name][i] for name in rows}
                            for i in range(len(instances))]}
