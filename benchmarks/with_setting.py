"""Run a benchmark script with one module constant of this checkout set otherwise, to compare a
threshold's two sides in one process kind on one machine:

    PYTHONPATH=<checkout> python benchmarks/with_setting.py MODULE NAME VALUE SCRIPT [ARGS...]

``VALUE`` is a Python literal (``0``, ``False``, ``1 << 20`` is not one: write ``1048576``).

e.g. ``with_setting.py mlx_stark.prover.stacked_reduction _MATRIX_DOMAIN 0 benchmarks/whole_call.py keccakf``.
"""
import ast
import importlib
import runpy
import sys

if __name__ == "__main__":
    module, name, value, script = sys.argv[1:5]
    mod = importlib.import_module(module)
    if not hasattr(mod, name):
        sys.exit(f"{module} has no {name}")
    setattr(mod, name, ast.literal_eval(value))
    sys.argv = [script] + sys.argv[5:]
    runpy.run_path(script, run_name="__main__")
