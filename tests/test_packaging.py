"""The wheel, built and installed away from the source tree: every prompt template and task config loads, and the
report templates are there."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

CHECK = """
import json, sys
from importlib import resources
from pathlib import Path
import dsp
from dsp.tasks.template import PromptTemplate
from dsp.tasks.config import load_task
site, texts, tasks = Path(sys.argv[1]).resolve(), json.loads(sys.argv[2]), json.loads(sys.argv[3])
assert Path(dsp.__file__).resolve().is_relative_to(site), dsp.__file__  # the wheel's files, not the source tree
for name, text in texts.items():
    assert resources.files("dsp.prompts").joinpath(name).read_text(encoding="utf-8") == text, name
    if "{input}" in text:
        PromptTemplate.load(name.removesuffix(".txt"))
for name in tasks:
    load_task(name)
shipped = sorted(p.name for p in resources.files("dsp.report.templates").iterdir() if p.name.endswith((".j2", ".css", ".js")))
assert shipped == json.loads(sys.argv[4]), shipped  # the report's templates, stylesheet and script
print("ok", len(texts), len(tasks))
"""


def test_wheel_installs_every_template_and_task_config(tmp_path):
    # Built from a copy: a build in the checkout leaves build/lib behind, whose stale files a later wheel would pack.
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "dist", "*.egg-info", "runs", "__pycache__", ".pytest_cache"
        ),
    )
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    # setuptools warns before it would leave such a folder out of a future wheel
    assert "is absent from the `packages` configuration" not in build.stdout + build.stderr
    wheel = next((tmp_path / "dist").glob("dsp-*.whl"))
    texts = {
        str(p.relative_to(ROOT / "prompts")): p.read_text(encoding="utf-8") for p in (ROOT / "prompts").rglob("*.txt")
    }
    tasks = sorted(p.stem for p in (ROOT / "data" / "tasks").glob("*.toml"))
    report_files = sorted(
        p.name for p in (ROOT / "dsp" / "report" / "templates").iterdir() if p.suffix in (".j2", ".css", ".js")
    )
    assert len(texts) >= 10 and len(tasks) >= 5 and len(report_files) >= 8
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in {Path(t).parent for t in texts}:
        assert f"dsp/prompts/{folder}/__init__.py" in names, folder  # each listed as the package it is

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # A fresh venv with only the wheel's files on its path, run outside the repository: nothing from the
    # source tree or the development venv (whose editable install points at the source) can be found.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True, timeout=120)
    r = subprocess.run(
        [
            str(tmp_path / "venv" / "bin" / "python"),
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(site)!r}); exec({CHECK!r})",
            str(site),
            json.dumps(texts),
            json.dumps(tasks),
            json.dumps(report_files),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["ok", str(len(texts)), str(len(tasks))]
