"""The deployment commands: ``predict`` (notebook 09), ``export`` and ``serve`` (notebook 10).

Each checks its flags and files, then calls ``mmcourse.apps.predict_csv``,
``mmcourse.apps.deploy`` or ``mmcourse.apps.serve``, and reports what they did.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmcourse.cli.arguments import file_system_error


def predict(parser: argparse.ArgumentParser, args) -> int:
    """``predict --model M (--image F --text T | --csv FILE [--skip-bad] [--out FILE])
    [--json]`` (notebook 09)."""
    if args.csv is None and (args.image is None or args.text is None):
        parser.error("argument --image/--text: give both --image FILE and --text TEXT, or "
                     "--csv FILE for many pairs")
    if args.csv is not None and (args.image is not None or args.text is not None):
        parser.error("argument --csv: give either --csv FILE or --image and --text, not both")
    for flag, value in (("--skip-bad", args.skip_bad), ("--out", args.out)):
        if value and args.csv is None:
            parser.error(f"argument {flag}: only with --csv FILE")
    if args.out is not None:
        out = Path(args.out)
        if out.is_dir() or out.suffix.lower() != ".csv":
            parser.error(f"argument --out: {out} should be a .csv file name")
        if not out.resolve().parent.is_dir():
            parser.error(f"argument --out: the folder {out.parent} does not exist")
    return run_predict(args)


def run_predict(args) -> int:
    """``python -m mmcourse predict --model M (--image F --text T | --csv FILE) [--json]
    [--skip-bad] [--out results.csv]``. 0 on success, 1 on a bad model, image or CSV (clear
    messages, no traceback). MODEL is a ``.keras`` file, an exported SavedModel folder or a
    ``.tflite`` file; for a qa model each text is a question, and the output its
    ``predicted_answer`` and that answer's probability; a match model gives ``probability``
    and ``predicted_label`` (1 when over 0.5).

    With ``--csv``, every row is checked first (its image read by the image contract,
    ``mmcourse.data.images``, as the model will read it), and every problem is reported with its
    file line; nothing is predicted unless ``--skip-bad`` says to skip the bad rows and go
    on. A ``label`` column (match models) is kept as ``label`` beside ``predicted_label``,
    and the accuracy reported. ``--out`` writes the results, skipped rows included with
    their ``problem``, as a CSV (``predict_csv.write_results_csv``). The work is
    ``mmcourse.apps.predict_csv``'s. Introduced in notebook 09; the other formats, qa and the
    checks in notebook 10."""
    import json

    import numpy as np

    from mmcourse.apps import predict_csv
    from mmcourse.apps.predictors import model_kind
    from mmcourse.data.folders import DataError

    skip_bad = getattr(args, "skip_bad", False)
    out = getattr(args, "out", None)
    try:
        if args.csv is not None:
            rows, inputs, problems, has_label = predict_csv.predict_inputs(args.model, args.csv)
            names = [str(Path(args.csv).parent / row.image) for row in rows]
        else:
            rows, problems, has_label = None, [], False
            inputs = [predict_csv.read_input(Path(args.image), model_kind(args.model))]
            names = [str(args.image)]
        if problems:
            print("\n".join(str(problem) for problem in problems), file=sys.stderr)
            if not skip_bad:
                good = f"the other {len(rows)} row(s)" if rows else "the rows that are good"
                raise DataError(f"{len(problems)} problem(s) in {args.csv}: nothing predicted; "
                                f"fix them, or add --skip-bad to predict {good}")
            if not rows:
                raise DataError(f"{args.csv}: no row left to predict")
            print(f"--skip-bad: skipped {len(problems)} problem(s); predicting the other "
                  f"{len(rows)} row(s)", file=sys.stderr)
        texts = [row.text for row in rows] if rows is not None else [args.text]
        task, results = predict_csv.predict_results(args.model, names, inputs, texts, rows,
                                                    has_label)
    except (DataError, ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    labelled = [result["correct"] for result in results if "correct" in result]
    accuracy = round(float(np.mean(labelled)), 6) if labelled else None
    skipped = [{"line": problem.line, "problem": str(problem)} for problem in problems]
    if out is not None:
        every = sorted(results + skipped, key=lambda result: result.get("line") or 0)
        try:
            predict_csv.write_results_csv(out, every)
        except OSError as error:
            print(f"error: --out {out}: cannot write it ({error.strerror})", file=sys.stderr)
            return 1
    if args.json:
        summary = {"predictions": results}
        if accuracy is not None:
            summary.update(accuracy=accuracy, labelled=len(labelled))
        if skipped:
            summary["skipped"] = skipped
        print(json.dumps(results[0] if rows is None else summary, ensure_ascii=False))
    else:
        _print_results(results, task)
        if accuracy is not None:
            print(f"accuracy {accuracy:.3f} on {len(labelled)} labelled row(s) (predicted 1 "
                  f"when the probability is over 0.5)")
        if out is not None:
            print(f"results written to {out}")
    return 0


def _print_results(results: list[dict], task: str) -> None:
    """``predict``'s text output: a line per result (a qa answer, or a match verdict)."""
    for result in results:
        if task == "qa":
            print(f"{result['predicted_answer']}  (probability {result['probability']:.3f})  "
                  f"{result['image']}  {result['text']!r}")
            continue
        verdict = "matches" if result["predicted_label"] else "does not match"
        known = ""
        if "label" in result:
            known = f"  label {result['label']}, {'right' if result['correct'] else 'wrong'}"
        print(f"{result['probability']:.3f}  predicted {result['predicted_label']} "
              f"({verdict}){known}  {result['image']}  {result['text']!r}")


def export(parser: argparse.ArgumentParser, args) -> int:
    """``export --model M.keras --out DIR [--tflite] [--json]``: a SavedModel for raw inputs
    (``mmcourse.apps.deploy``, notebook 10). 2 for bad arguments, 1 for a bad model file."""
    import json

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        parser.error(f"argument --out: {out} is a file; give a new folder")
    if out.is_dir() and any(out.iterdir()):
        parser.error(f"argument --out: {out} is not empty; give a new or empty folder (an "
                     f"export never overwrites files)")
    if Path(args.model).is_dir():
        parser.error(f"argument --model: {args.model} is a folder; export takes the .keras "
                     f"file saved by `python -m mmcourse train ... --save MODEL.keras`")
    if args.vocabulary is not None and not Path(args.vocabulary).exists():
        parser.error(f"argument --vocabulary: {args.vocabulary} not found; give the vocab.json "
                     f"of the data the model was trained on (e.g. data/vocab.json)")
    from mmcourse.apps import deploy

    try:
        report = deploy.export(args.model, out, tflite=args.tflite, vocabulary=args.vocabulary)
    except ValueError as error:
        print(f"error: --model {args.model}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(file_system_error(error, "--out", out), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        returns = "probability" if report["task"] == "match" else \
            "answer, probability and probabilities (signature 'answers' names the columns)"
        print(f"wrote the SavedModel {out} ({report['saved_model_bytes'] / 1e6:.1f} MB): "
              f"signature {deploy.SIGNATURE!r} takes image (encoded PNG/JPEG bytes) and text "
              f"(strings), returns {returns}")
        for kind in deploy.TFLITE_FILES if args.tflite else ():
            print(f"wrote {report[f'tflite_{kind}']} ({report[f'tflite_{kind}_bytes'] / 1e3:.0f} "
                  f"kB)")
        if args.tflite:
            print(report["tflite_note"])
    return 0


def serve(parser: argparse.ArgumentParser, args) -> int:
    """``serve --model PATH [...]``: a real HTTP server (``mmcourse.apps.serve``, notebook 10)."""
    if args.port > 65535:
        parser.error(f"argument --port: must be from 1 to 65535, got {args.port}")
    if not Path(args.model).exists():
        parser.error(f"argument --model: {args.model} not found; give a folder written by "
                     f"`python -m mmcourse export`, a PaliGemma preset folder, or a "
                     f"captioner or CLIP .keras file")
    if args.index is not None and not Path(args.index).is_dir():
        parser.error(f"argument --index: {args.index} is not a folder; give a folder of images")
    if not args.name or "/" in args.name or ":" in args.name:
        parser.error(f"argument --name: must be a non-empty name without '/' or ':', got "
                     f"{args.name!r}")
    return run_server(args)


def run_server(args) -> int:
    """``python -m mmcourse serve --model PATH ...`` (``mmcourse.apps.serve``): load, warm up
    and serve until SIGINT or SIGTERM; requests in flight are finished, then exit 0. 1 for a
    model that cannot be served. Introduced in notebook 10."""
    import os
    import signal

    import uvicorn

    from mmcourse.apps import deploy
    from mmcourse.apps import serve as serving
    from mmcourse.data.folders import DataError

    limits = serving.Limits(max_body_bytes=int(args.max_body_mb * 1_000_000),
                            max_requests=args.max_requests)
    try:
        with deploy.quiet_tensorflow():
            served = serving.load_served(args.model, args.index, limits)
            serving.warm_up(served)
    except (ValueError, DataError) as error:
        print(f"error: --model {args.model}: {error}", file=sys.stderr)
        return 1
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding to {args.host}: anyone who can reach this address can call "
              f"the model; there is no authentication. Put a reverse proxy with TLS and "
              f"authentication in front, or bind 127.0.0.1", file=sys.stderr)
    app = serving.build_app(served, args.name, args.max_batch, args.batch_timeout_ms, limits)
    routes = {"tfserving": f"/v1/models/{args.name}[:predict|/metadata]",
              "chat": "/v1/chat/completions", "clip": "/v1/embeddings, /v1/search"}
    print(f"serving {args.model} as {args.name!r} ({served.kind}: {routes[served.kind]}) on "
          f"http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                            timeout_graceful_shutdown=None)
    # uvicorn finishes the requests in flight on SIGTERM or SIGINT, then re-raises the signal
    # to the handler it found: a handler that does nothing makes that a clean exit 0
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: None)
    uvicorn.Server(config).run()
    print("server stopped: every request in flight was answered", file=sys.stderr, flush=True)
    # Leave now: every request is answered and nothing is left to save, while TensorFlow's
    # native teardown at interpreter exit takes seconds (about 7 s on a loaded 2-core machine).
    sys.stdout.flush()
    os._exit(0)
