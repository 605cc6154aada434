"""A CLIP model behind ``/v1/embeddings`` and ``/v1/search`` of ``python -m mmcourse
serve`` (notebook 10): ``ClipModel`` embeds texts and images, ``ImageIndex`` searches a
folder of images by cosine similarity (faiss, exact), and ``search_benchmark`` (``python
-m mmcourse bench search``) measures that search against NumPy and an approximate graph.
"""

from pathlib import Path

import numpy as np

from mmcourse.apps.serve_fields import (
    ApiError,
    Limits,
    check_image,
    check_text,
    data_url_bytes,
    request_field,
)
from mmcourse.data import folders, text

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


class ImageIndex:
    """L2-normalised image embeddings (N, d) and their file names in a faiss
    ``IndexFlatIP``: exact inner-product search, so cosine similarity, the same ranking as
    brute force. ``python -m mmcourse bench search`` measures it against NumPy brute force
    and an approximate HNSW graph: at the course's 500 images every method answers in well
    under a millisecond, less than embedding the query costs; from about 10,000 images the
    flat index stays fast while a NumPy product and sort do not, and an approximate graph
    only pays at 10^5 and more, at the price of recall. Introduced in notebook 10."""

    def __init__(self, embeddings, names):
        import faiss

        self.embeddings = np.ascontiguousarray(embeddings, np.float32)
        self.names = list(names)
        if self.embeddings.ndim != 2 or len(self.embeddings) != len(self.names):
            raise ValueError(f"embeddings must be (N, d) with one name each, got "
                             f"{self.embeddings.shape} and {len(self.names)} names")
        faiss.omp_set_num_threads(1)  # one query at a time: threads only add contention
        self.index = faiss.IndexFlatIP(self.embeddings.shape[1])
        self.index.add(self.embeddings)

    def search(self, vectors, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores (Q, k), indices (Q, k)), best first."""
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), np.float32)
        return self.index.search(vectors, min(k, len(self.names)))


def _search_candidates(size, vectors, probes, flat, graph, k) -> dict:
    """The three searches of ``search_benchmark``, each taking the next probe."""
    state = {"i": 0}

    def probe():
        state["i"] = (state["i"] + 1) % len(probes)
        return probes[state["i"]:state["i"] + 1]

    def brute():
        scores = probe() @ vectors.T
        top = np.argpartition(-scores[0], k)[:k]
        return top[np.argsort(-scores[0, top])]

    return {f"numpy N={size}": brute, f"faiss flat N={size}": lambda: flat.search(probe(), k),
            f"faiss hnsw N={size}": lambda: graph.search(probe(), k)}


def search_benchmark(sizes=(500, 10_000, 100_000), dimension: int = 64, k: int = 5,
                     queries: int = 20):
    """The ``search`` benchmark: top-``k`` of one query among N random unit vectors with
    NumPy brute force (a product, then ``argpartition``), faiss ``IndexFlatIP`` (exact, what
    ``ImageIndex`` uses) and faiss HNSW (approximate; its recall@k is reported). Introduced
    in notebook 10."""
    import faiss

    from mmcourse.bench import BenchResult, Ratio, speedup, time_candidates

    faiss.omp_set_num_threads(1)  # as ImageIndex runs it
    rng = np.random.default_rng(0)
    result = BenchResult("search", f"top-{k} search of one query, d={dimension}: NumPy brute "
                                   f"force vs faiss flat (exact) vs faiss HNSW (approximate)")
    for size in sizes:
        vectors = rng.normal(size=(size, dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        probes = vectors[rng.choice(size, queries, replace=False)] + \
            rng.normal(scale=0.3, size=(queries, dimension)).astype(np.float32)
        flat = faiss.IndexFlatIP(dimension)
        flat.add(vectors)
        graph = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
        graph.add(vectors)
        timings = time_candidates(_search_candidates(size, vectors, probes, flat, graph, k),
                                  repeats=50, warmup=3)
        result.timings.extend(timings)
        exact = flat.search(probes, k)[1]
        approximate = graph.search(probes, k)[1]
        truth = np.argsort(-(probes @ vectors.T), axis=1)[:, :k]
        result.facts[f"flat = brute force, N={size}"] = bool((exact == truth).all())
        result.facts[f"hnsw recall@{k}, N={size}"] = round(float(np.mean(
            [len(set(a) & set(t)) / k for a, t in zip(approximate, truth, strict=True)])), 3)
        result.ratios.append(Ratio(f"flat vs numpy N={size}", speedup(
            timings, f"numpy N={size}", f"faiss flat N={size}")))
    return result


class ClipModel:
    """A CLIP model (``clip.build_clip``) behind ``/v1/embeddings`` and ``/v1/search``."""

    kind = "clip"

    def __init__(self, model, index_folder=None, limits: Limits | None = None):
        self.model = model
        self.vocabulary = text.load_vocabulary()
        length = model.get_layer("text_encoder").inputs[0].shape[1]  # None: any length
        self.sequence_length = int(length or text.saved_sequence_length())
        self.image_size = int(model.get_layer("image_encoder").inputs[0].shape[1])
        self.index, self.index_folder = None, None
        if index_folder is not None:
            self.index_folder = Path(index_folder)
            self.index = self.build_index(self.index_folder, limits or Limits())

    def build_index(self, folder: Path, limits: Limits) -> ImageIndex:
        """Every image file under ``folder`` (sorted paths), embedded."""
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise ValueError(f"index folder {folder} holds no image files "
                             f"({', '.join(IMAGE_SUFFIXES)})")
        pixels = [folders.read_image(p, size=self.image_size) for p in paths]
        vectors = self.embed([("image", p) for p in pixels])
        return ImageIndex(vectors, [p.relative_to(folder).as_posix() for p in paths])

    def embed(self, items: list[tuple[str, object]]) -> np.ndarray:
        """Normalised embeddings of ("text", str) and ("image", RGB uint8) items, in order."""
        from mmcourse import clip

        vectors = [None] * len(items)
        texts = [(i, value) for i, (kind, value) in enumerate(items) if kind == "text"]
        images = [(i, value) for i, (kind, value) in enumerate(items) if kind == "image"]
        if texts:
            ids = text.vectorize([t for _, t in texts], vocabulary=self.vocabulary,
                                 sequence_length=self.sequence_length, warn=False)
            for (i, _), vector in zip(texts, clip.embed_texts(self.model, ids), strict=True):
                vectors[i] = vector
        if images:
            for (i, _), vector in zip(images, clip.embed_images(
                    self.model, np.stack([p for _, p in images])), strict=True):
                vectors[i] = vector
        return np.stack(vectors).astype(np.float32)

    def run(self, requests: list[list[tuple[str, object]]]) -> list[np.ndarray]:
        vectors = self.embed([item for request in requests for item in request])
        answers, start = [], 0
        for request in requests:
            answers.append(vectors[start:start + len(request)])
            start += len(request)
        return answers

    def parse_embeddings(self, body, limits: Limits, name: str) -> list[tuple[str, object]]:
        model = request_field(body, "model", "", str, required=False, default=name)
        if model != name:
            raise ApiError(404, "model", f"model {model!r} is not served here; this server "
                                         f"serves {name!r}", "not_found_error")
        given = request_field(body, "input", "", (str, list))
        entries = [given] if isinstance(given, str) else given
        if not 1 <= len(entries) <= limits.max_instances:
            raise ApiError(400, "input", f"input must hold 1 to {limits.max_instances} items, "
                                         f"got {len(entries)}")
        items = []
        for index, entry in enumerate(entries):
            where = "input" if isinstance(given, str) else f"input[{index}]"
            if isinstance(entry, str):
                items.append(("text", check_text(entry, where, limits)))
            elif isinstance(entry, dict) and "image_url" in entry:
                url = request_field(request_field(entry, "image_url", where, dict), "url",
                             f"{where}.image_url", str)
                items.append(("image", check_image(data_url_bytes(url, f"{where}.image_url.url"),
                                                   f"{where}.image_url", limits,
                                                   self.image_size)))
            else:
                raise ApiError(400, where, f"{where} must be a text or {{\"image_url\": "
                                           f"{{\"url\": \"data:image/png;base64,...\"}}}}")
        return items
