"""An exported SavedModel folder (``python -m mmcourse export``, a match or qa model)
behind TensorFlow Serving's REST API, for ``python -m mmcourse serve`` (notebook 10):
``PredictModel`` checks the ``instances`` of a request, runs the signature on a batch of
requests, and describes the signature as ``/metadata`` does.
"""

from mmcourse.apps.deploy import SIGNATURE
from mmcourse.apps.predictors import SavedModelPredictor
from mmcourse.apps.serve_fields import (
    ApiError,
    Limits,
    b64_bytes,
    check_image,
    check_text,
    request_field,
)


class PredictModel:
    """An exported SavedModel folder behind TensorFlow Serving's REST API."""

    kind = "tfserving"

    def __init__(self, path):
        self.predictor = SavedModelPredictor(path)
        self.signature = self.predictor.signature
        self.task = self.predictor.task
        self.output_names = sorted(self.signature.structured_outputs)

    def parse(self, body, limits: Limits) -> list[tuple[bytes, str]]:
        signature_name = request_field(body, "signature_name", "", str, required=False,
                                default=SIGNATURE)
        if signature_name != SIGNATURE:
            raise ApiError(400, "signature_name", f"signature_name must be "
                                                  f"{SIGNATURE!r}, got {signature_name!r}")
        if isinstance(body, dict) and "inputs" in body and "instances" not in body:
            raise ApiError(400, "inputs", "inputs (the columnar format) is not served; this "
                                          "server takes the row format: "
                                          "{\"instances\": [{\"image\": {\"b64\": ...}, "
                                          "\"text\": ...}]}")
        instances = request_field(body, "instances", "", list)
        if not 1 <= len(instances) <= limits.max_instances:
            raise ApiError(400, "instances", f"instances must hold 1 to "
                                             f"{limits.max_instances} instances, got "
                                             f"{len(instances)}")
        rows = []
        for index, instance in enumerate(instances):
            where = f"instances[{index}]"
            image = request_field(instance, "image", where, dict)
            data = b64_bytes(request_field(image, "b64", f"{where}.image", str),
                             f"{where}.image.b64")
            check_image(data, f"{where}.image", limits)
            rows.append((data, check_text(request_field(instance, "text", where, str),
                                          f"{where}.text", limits)))
        return rows

    def run(self, requests: list[list[tuple[bytes, str]]]) -> list[list]:
        """One signature call for the instances of every request; each its predictions."""
        import tensorflow as tf

        images = [image for rows in requests for image, _ in rows]
        texts = [caption.encode("utf-8") for rows in requests for _, caption in rows]
        outputs = self.signature(image=tf.constant(images), text=tf.constant(texts))
        columns = {name: [value.decode("utf-8") if isinstance(value, bytes) else value
                          for value in tensor.numpy().tolist()]
                   for name, tensor in outputs.items()}
        rows = [columns[self.output_names[0]][i] if len(columns) == 1 else
                {name: columns[name][i] for name in self.output_names}
                for i in range(len(images))]
        answers, start = [], 0
        for request in requests:
            answers.append(rows[start:start + len(request)])
            start += len(request)
        return answers

    def metadata(self, name: str) -> dict:
        """The signature as TensorFlow Serving's ``/metadata`` describes it."""
        from tensorflow.core.framework import types_pb2

        def tensor(spec, tensor_name):
            dims = [{"size": str(-1 if d is None else d), "name": ""} for d in spec.shape]
            return {"dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
                    "tensor_shape": {
                "dim": dims, "unknown_rank": False}, "name": tensor_name}

        inputs = self.signature.structured_input_signature[1]
        outputs = self.signature.structured_outputs
        return {"model_spec": {"name": name, "signature_name": "", "version": "1"},
                "metadata": {"signature_def": {"signature_def": {SIGNATURE: {
                    "inputs": {key: tensor(spec, f"{SIGNATURE}_{key}:0")
                               for key, spec in inputs.items()},
                    "outputs": {key: tensor(spec, f"StatefulPartitionedCall:{i}")
                                for i, (key, spec) in enumerate(sorted(outputs.items()))},
                    "method_name": "tensorflow/serving/predict"}}}}}
