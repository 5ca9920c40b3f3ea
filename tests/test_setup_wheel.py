"""The wheel is the product: built from a copy of the sources, installed into a fresh virtual
environment (its own interpreter, no site-packages of ours, torch pinned as in CI), and
`gradwatch demo` runs from it in a directory outside the source tree.

About a minute here, most of it pip installing torch and the scientific stack;
`pytest -m "not wheel"` leaves it out.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import gradwatch
from gradwatch.lab.registry import experiments

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "gradwatch"
pytestmark = [pytest.mark.wheel, pytest.mark.slow, pytest.mark.timeout(900)]


def sh(cmd, cwd, timeout=600, env=None):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def clean_env() -> dict:
    """The environment less what would bring the source tree in (a PYTHONPATH to src/ would
    even make pip take the package as installed already)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}


def package_files() -> set[str]:
    """Every file of the package in the source tree, as a path inside the wheel."""
    return {p.relative_to(PACKAGE.parent).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built by pip from a copy of the sources (so nothing built lands in the tree)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src-copy"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "src", src / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", src], cwd=tmp, env=clean_env())
    (built,) = (tmp / "dist").glob("gradwatch-*.whl")
    return built


def test_the_wheel_holds_every_file_of_the_package_and_its_metadata(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = package_files() - names
    assert not missing, f"not in the wheel (add them to [tool.setuptools.package-data]): {sorted(missing)}"
    meta = zipfile.ZipFile(wheel).read(f"gradwatch-{gradwatch.__version__}.dist-info/METADATA").decode()
    assert f"Version: {gradwatch.__version__}\n" in meta
    required = [line.split(": ", 1)[1] for line in meta.splitlines()
                if line.startswith("Requires-Dist: ") and "extra ==" not in line]
    assert any(r.startswith("torch>=") for r in required), required  # a range, not the pin
    assert not [r for r in required if r.startswith(("pytest", "lightning", "transformers", "mlflow", "wandb"))]
    entry = zipfile.ZipFile(wheel).read(f"gradwatch-{gradwatch.__version__}.dist-info/entry_points.txt").decode()
    assert "gradwatch = gradwatch.cli:main" in entry


def test_the_demo_runs_from_the_wheel_in_a_fresh_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    bin_ = venv / ("Scripts" if os.name == "nt" else "bin")
    env = clean_env()
    try:
        sh([sys.executable, "-m", "venv", venv], cwd=tmp_path, timeout=300, env=env)
        sh([bin_ / "python", "-m", "pip", "install", "-q", "-c", ROOT / "constraints" / "dev.txt", wheel],
           cwd=tmp_path, timeout=900, env=env)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        where = sh([bin_ / "python", "-c", "import sys, importlib.util as u, gradwatch; print(gradwatch.__file__); "
                    "print(u.find_spec('pytest'), u.find_spec('lightning')); print(*sys.path, sep='\\n')"],
                   cwd=elsewhere, env=env).splitlines()
        assert Path(where[0]).is_relative_to(venv), where[0]
        assert where[1] == "None None", "the library's own requirements pulled in a dev tool or a framework"
        assert not [p for p in where[2:] if p and Path(p).resolve().is_relative_to(ROOT)], where[2:]

        assert sh([bin_ / "gradwatch", "--version"], cwd=elsewhere, env=env) == f"gradwatch {gradwatch.__version__}\n"
        listed = sh([bin_ / "gradwatch", "lab", "list"], cwd=elsewhere, env=env).splitlines()
        assert len(listed) == len(experiments()) and not [line for line in listed if "cannot load" in line], listed

        out = sh([bin_ / "gradwatch", "demo", "--out", "demo"], cwd=elsewhere, env=env, timeout=600)
        assert "test accuracy: before" in out and "→ after" in out, out
        page = (elsewhere / "demo" / "report.html").read_text()
        assert "after " in page and (elsewhere / "demo" / "after" / "run.db").exists()
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # 1.4 GB; pytest keeps the last three tmp dirs
