"""The login-node half stays light: no torch/transformers/datasets, and never the runner package."""

import ast
import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("torch", "transformers", "datasets", "evaluate", "jiwer", "optimum", "ctc_tui.runner")


def test_ctc_tui_modules_import_without_heavy_packages():
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts)
        for p in (REPO / "ctc_tui").rglob("*.py")
        if p.stem not in ("__main__", "__init__")
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "", f"ctc_tui pulled in: {out.stdout.strip()}"


def test_ctc_tui_source_never_imports_runner():
    for path in (REPO / "ctc_tui").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not name.startswith(("runner", "ctc_tui.runner")), f"{path.name} imports {name}"


def test_runner_imports_only_shared_ctc_tui_modules():
    """The runner sees the login-node half only through the shared contract (ctc_tui.core) and the data
    sources; its own modules are ctc_tui.runner.*."""
    allowed = ("ctc_tui.core", "ctc_tui.sources", "ctc_tui.runner")
    for path in (REPO / "runner").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ctc_tui"):
                module = node.module or ""
                assert (
                    module == "ctc_tui.runner"
                    or module.startswith(tuple(a + "." for a in allowed))
                    or module in allowed
                ), f"{path.name} imports {module}"


def test_optimum_habana_never_imported_at_module_level():
    for path in (REPO / "runner").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:  # module level only
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                text = ast.unparse(node)
                assert "optimum" not in text and "habana" not in text, f"{path.name}: {text}"


def test_the_wizards_first_screen_is_up_before_the_preset_model_is_built():
    """pydantic (the preset model) is most of a start-up: the first step is composed from the preset
    file alone, and the model validates it once that screen is drawn."""
    code = (
        "import asyncio, sys\n"
        "from ctc_tui.tui import make_app\n"
        "from ctc_tui.tui.screens.model_step import ModelStep\n"
        "app = make_app(preset='presets/demo-cpu.yaml')\n"
        "seen = {'imported': 'pydantic' in sys.modules}\n"
        "mount = ModelStep.on_mount\n"
        "def on_mount(self):\n"
        "    seen['at_first_screen'] = 'pydantic' in sys.modules\n"
        "    mount(self)\n"
        "ModelStep.on_mount = on_mount\n"
        "async def main():\n"
        "    async with app.run_test() as pilot:\n"
        "        await pilot.pause(0.5)\n"
        "        seen['then'] = 'pydantic' in sys.modules and app.draft.loaded\n"
        "        seen['arch'] = app.draft.get('model.architecture')\n"
        "asyncio.run(main())\n"
        "print(seen)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    assert seen == {"imported": False, "at_first_screen": False, "then": True, "arch": "wav2vec2-tiny"}, seen
