"""The remedies import torch only: plotting, tables and SciPy load when a function needs them."""

import subprocess
import sys


def test_importing_the_remedies_loads_no_heavy_dependency():
    code = ("import sys, gradwatch as gw; gw.remedies; gw.init; gw.clip; gw.schedules; gw.architecture; "
            "print(','.join(m for m in ('matplotlib', 'pandas', 'scipy', 'sklearn', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
