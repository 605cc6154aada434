"""Messages of check-data and grade in English and Chinese through gettext (issue 28,
section 5): every marked message has both languages, the compiled catalogue equals its
source, ``--lang zh`` and a Chinese locale speak Chinese, and the library stays English."""

import ast
import gettext
import os
import re
import subprocess
import sys

import babel.messages.pofile as babel_pofile
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mmcourse import REPO_ROOT, i18n
from mmcourse.__main__ import main
from mmcourse.data import folders

PO = i18n.LOCALE_DIR / "zh" / "LC_MESSAGES" / "mmcourse.po"
MO = PO.with_suffix(".mo")
HAN = re.compile(r"[\u4e00-\u9fff]")


def _marked_messages():
    """Every string literal passed to ``_(...)`` or ``N_(...)`` in the package's modules."""
    found = {}
    for path in sorted((REPO_ROOT / "mmcourse").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in ("_", "N_"):
                (argument,) = node.args  # _(NAMES[key]) translates values marked with N_()
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    found.setdefault(argument.value, f"{path.name}:{node.lineno}")
    return found


def _po():
    with open(PO, "rb") as handle:
        catalog = babel_pofile.read_po(handle)
    return {message.id: message.string for message in catalog if message.id}


def _fields(text):
    return sorted(re.findall(r"\{(\w*)[^{}]*\}", text))


def test_every_marked_message_has_both_languages():
    marked, po = _marked_messages(), _po()
    assert len(marked) > 80  # check-data, its warnings and grade
    missing = {m: where for m, where in marked.items() if not po.get(m)}
    assert missing == {}, f"add these to {PO.name}: {missing}"
    assert set(po) - set(marked) == set(), "entries no code uses"
    for message in marked:
        assert _fields(po[message]) == _fields(message), message  # the same {placeholders}
        assert HAN.search(po[message]) or message in (" (that file exists)",), message


def test_the_compiled_catalogue_equals_its_source():
    with open(MO, "rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for message, translation in _po().items():
        assert compiled.gettext(message) == translation, message


def _bad_folder(tmp_path):
    folder = tmp_path / "mine"
    (folder / "images").mkdir(parents=True)
    (folder / "captions.csv").write_text("图片,描述,标签\nimages\\a.png,红,也许\nb.png,,1\n",
                                         encoding="utf-8")
    return folder


def test_check_data_lang_zh_speaks_chinese_and_the_library_stays_english(tmp_path, capsys):
    folder = _bad_folder(tmp_path)
    assert main(["check-data", str(folder), "--lang", "zh"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == "captions.csv 第 2 行，列 label: 标签必须是 0 或 1（或 true/false、yes/no、是/否），" \
                     "实际为 '也许'; 描述与图片相符时写 1，不符时写 0"
    assert all(HAN.search(line) for line in out), out
    assert out[-1].endswith("：0 行，读取了 0 张图片；2 个问题")
    assert i18n.current() == "en"  # the language comes back after the command
    assert "label must be 0 or 1" in str(folders.check_folder(folder).problems[0])
    assert main(["check-data", str(folder), "--lang", "en"]) == 1
    english = capsys.readouterr().out
    assert "label must be 0 or 1" in english and "读取了" not in english


@pytest.mark.parametrize(("variables", "chinese"), [
    ({"LANG": "zh_CN.UTF-8"}, True), ({"LANGUAGE": "zh_CN:en"}, True),
    ({"LANG": "en_US.UTF-8"}, False)])
def test_a_chinese_locale_speaks_chinese_without_lang(tmp_path, variables, chinese):
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LANGUAGE", "LC_ALL",
                                                            "LC_MESSAGES")}
    completed = subprocess.run([sys.executable, "-m", "mmcourse", "check-data",
                                str(_bad_folder(tmp_path))], capture_output=True, text=True,
                               cwd=REPO_ROOT, env={**env, **variables}, timeout=60)
    assert completed.returncode == 1 and completed.stderr == ""
    assert ("读取了 0 张图片" in completed.stdout) == chinese, completed.stdout


def test_grade_lang_zh_writes_chinese_feedback(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in (
        "from mmcourse.course_exercises import notebook_00\nex = notebook_00()",
        "raise RuntimeError('坏了')", "ex.q1.check(ex.q1.reference())")]), subs / "张伟.ipynb")
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in (  # the kernel dies
        "from mmcourse.course_exercises import notebook_00\nex = notebook_00()",
        "import os\nos._exit(3)")]), subs / "李娜.ipynb")
    out = tmp_path / "out" / "grades.csv"
    assert main(["grade", str(subs), "--out", str(out), "--lang", "zh", "--timeout", "60"]) == 0
    feedback = (tmp_path / "out" / "grades_feedback" / "张伟.md").read_text(encoding="utf-8")
    assert feedback.startswith("# 张伟 的反馈\n\n4 道题中答对 1 道。\n\n**第一个错误：** 张伟.ipynb 第 2 个单元格"
                               "（不是练习单元格: \"raise RuntimeError('坏了')\"）：RuntimeError: 坏了。")
    assert "运行时间：" in feedback
    text = out.read_text(encoding="utf-8-sig")
    assert "张伟,张伟.ipynb,q2,not attempted,笔记本中没有 ex.q2.check(...),,," in text
    assert "李娜,李娜.ipynb,total,error,李娜.ipynb: 笔记本中止了（DeadKernelError：Kernel died）,0,4," \
        in text  # a message made in the child process, in the same language
