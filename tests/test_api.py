import subprocess
import sys


def test_import_is_light_and_public_names_resolve():
    code = ("import sys, gradwatch as gw; heavy = [m for m in ('matplotlib', 'pandas', 'sklearn', 'rich', 'typer') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_diagnose_stays_the_function_after_the_rules_package_is_imported():
    import gradwatch as gw
    import gradwatch.diagnosis  # noqa: F401 - importing the package must not shadow gw.diagnose
    import gradwatch.cli  # noqa: F401

    assert callable(gw.diagnose) and gw.diagnose.__name__ == "diagnose"
    assert callable(gw.watch) and callable(gw.load)
