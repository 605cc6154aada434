"""``python -m mmcourse data|train --modality audio|video`` with bad arguments (issue 27):
exit status 2, a message that names the flag, no traceback."""

import pytest

from tests.test_cli_errors import _assert_clean_error, _run

BAD_ARGUMENTS = [
    (["data", "--modality", "video", "--sample-rate", "16000"],
     ["argument --sample-rate", "only with --modality audio"]),
    (["data", "--modality", "sound"], ["argument --modality", "invalid choice: 'sound'"]),
    (["data", "--modality", "audio", "--sample-rate", "100"],
     ["argument --sample-rate", "from 8000 to 48000", "got 100"]),
    (["data", "--modality", "audio", "--sample-rate", "fast"],
     ["argument --sample-rate", "expected a whole number"]),
    (["data", "--sample-rate", "16000"], ["argument --sample-rate", "only with --modality audio"]),
    (["data", "--modality", "audio", "--language", "zh"],
     ["argument --language", "not with --modality audio"]),
    (["train", "--modality", "smell"], ["argument --modality", "invalid choice: 'smell'"]),
    (["train", "--modality", "audio"], ["argument --task", "--modality audio trains --task "
                                        "retrieval, got 'match'"]),
    (["train", "--modality", "audio", "--task", "retrieval", "--fusion", "film"],
     ["argument --fusion", "not used with --modality audio"]),
    (["train", "--modality", "video", "--fusion", "concat"],
     ["argument --fusion", "temporal or average, got 'concat'"]),
    (["train", "--modality", "video", "--fusion", "average", "--save", "m.keras"],
     ["argument --save", "not used with --modality video"]),
    (["train", "--modality", "video", "--fusion", "average", "--epochs", "0"],
     ["argument --epochs", "must be >= 1"]),
]


@pytest.mark.parametrize(("arguments", "needles"), BAD_ARGUMENTS,
                         ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_bad_modality_arguments_name_the_flag(arguments, needles):
    _assert_clean_error(_run(*arguments), 2, *needles)


def test_audio_data_verify_on_an_empty_folder_says_how_to_fix(tmp_path):
    _assert_clean_error(_run("data", "--modality", "audio", "--verify", "--root", str(tmp_path)),
                        1, "missing: manifest.json", "--modality audio")


def test_video_data_verify_on_an_empty_folder_says_how_to_fix(tmp_path):
    _assert_clean_error(_run("data", "--modality", "video", "--verify", "--root", str(tmp_path)),
                        1, "missing: manifest.json", "--modality video")
