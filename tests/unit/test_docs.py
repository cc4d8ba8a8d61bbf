"""The README and docs/ pages hold together: every relative link and #anchor resolves, every repository
path and test they name exists, the README stays a front door, and its two set-up commands are the ones
``.ci/run`` runs (same torch pin, same extras, same final test command)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"
DEVELOPMENT = ROOT / "docs" / "development.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
#: A repository path in inline code: a top-level folder of this repository, then a path.
REPO_PATH = re.compile(r"^(?:ctc_tui|runner|tests|bench|presets|docs|\.ci)/[\w./-]*$")
#: A placeholder in a path (``launchers/NAME.py``, ``checkpoint-N``, ``*.yaml``): a pattern, not a file.
PLACEHOLDER = re.compile(r"\*|\b(?!README\b)[A-Z]+\b")
#: ``file.py::test_name`` as the reliability table names a test.
TEST_REF = re.compile(r"^(?P<file>[\w/]*test_\w+\.py)::(?P<name>\w+)$")


def _prose(text: str) -> str:
    """The text without fenced blocks (their brackets and paths are captures, not links)."""
    return FENCE.sub("", text)


def _inline_code(text: str) -> list[str]:
    return [span.strip("`") for span in INLINE_CODE.findall(_prose(text))]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation removed, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor of ``page``, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for _, title in HEADING.findall(_prose(page.read_text())):
        slug = github_slug(title)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    text = INLINE_CODE.sub("", _prose(page.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def _link_problem(page: Path, target: str) -> str | None:
    path_part, _, anchor = target.partition("#")
    dest = (page.parent / path_part).resolve() if path_part else page
    where = f"{page.relative_to(ROOT)}: link {target}"
    if not dest.exists():
        return f"{where}: {dest} does not exist"
    if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
        return f"{where}: no heading of {dest.relative_to(ROOT)} has the anchor #{anchor}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    links = relative_links(page)
    problems = [p for p in (_link_problem(page, t) for t in links) if p]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_and_test_named_exists(page):
    problems = []
    for span in _inline_code(page.read_text()):
        token = span.split()[0] if span.split() else ""
        test = TEST_REF.match(token)
        if test:
            problems += _test_problem(test["file"], test["name"])
        elif REPO_PATH.match(token) and not PLACEHOLDER.search(token):
            if not (ROOT / token.rstrip("/")).exists():
                problems.append(f"`{span}`: {token} does not exist")
    assert not problems, f"{page.relative_to(ROOT)}:\n" + "\n".join(problems)


def _test_problem(file: str, name: str) -> list[str]:
    candidates = [ROOT / file] if "/" in file else list((ROOT / "tests").rglob(file))
    files = [c for c in candidates if c.is_file()]
    if not files:
        return [f"{file}::{name}: no such test file under tests/"]
    if not any(re.search(rf"^\s*(async )?def {name}\(", f.read_text(), re.M) for f in files):
        return [
            f"{file}::{name}: no test of that name in {', '.join(str(f.relative_to(ROOT)) for f in files)}"
        ]
    return []


def test_the_anchor_rule_is_githubs():
    assert github_slug("Batch shapes (`data.padding`)") == "batch-shapes-datapadding"
    assert github_slug("Multi-node and Slurm") == "multi-node-and-slurm"
    assert github_slug("Where to change what") == "where-to-change-what"
    assert github_slug("The run_dir: `RUN_DIR/x.json`") == "the-run_dir-run_dirxjson"


def test_the_link_check_finds_a_broken_link_and_a_broken_anchor(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "b.md").write_text("# Title\n\n## A `code` part\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md#a-code-part) [gone](c.md) [bad](b.md#nope) `[x](d.md)`\n```\n[y](e.md)\n```\n")
    assert relative_links(page) == ["b.md#a-code-part", "c.md", "b.md#nope"]
    assert _link_problem(page, "b.md#a-code-part") is None
    assert "does not exist" in _link_problem(page, "c.md")
    assert "#nope" in _link_problem(page, "b.md#nope")


# The README: a front door whose two commands come first and are the ones CI runs.


def _setup_block() -> list[str]:
    """The README's first fenced block, which must come before any section: the set-up commands."""
    text = README.read_text()
    first_block = FENCE.search(text)
    assert first_block, "README.md has no code block: the two set-up commands must come first"
    assert "\n## " not in text[: first_block.start()], "the set-up commands must come before any section"
    return [line for line in first_block.group(0).splitlines()[1:-1] if line.strip()]


def _commands(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.lstrip().startswith("#")]


def _ci_lines() -> list[str]:
    return [
        line.strip() for line in CI_RUN.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def _pin(command: str) -> str:
    """The torch requirement of an install command, as pip gets it (``torch==X``)."""
    pins = [w for w in shlex.split(command) if w.startswith("torch")]
    assert pins, f"no torch requirement in: {command}"
    return pins[0]


def _extras(command: str) -> str:
    """The extras of the editable install in ``command``: ``-e ".[a,b]"`` gives ``a,b``."""
    words = shlex.split(command.split("&&")[0].split("||")[0])
    return words[words.index("-e") + 1].removeprefix(".[").removesuffix("]")


def _ci_torch_line() -> str:
    """``.ci/run``'s torch install (before its ``||`` fallback)."""
    line = next(line for line in _ci_lines() if "pip install" in line and "torch" in line)
    return line.split("||")[0]


def _ci_install_line() -> str:
    return next(line for line in _ci_lines() if "pip install" in line and " -e " in line)


def test_the_readme_is_a_front_door():
    size = len(README.read_text())
    assert size < 16_000, f"README.md is {size:,} characters: move reference text to a docs/ page"


def test_the_readmes_two_commands_come_first_and_are_the_demo_and_ci():
    commands = _commands(_setup_block())
    assert len(commands) == 2, (
        f"the set-up block holds {len(commands)} commands, want the demo and CI: {commands}"
    )
    demo, tests = commands
    assert demo.endswith("&& ctc-tui run demo-cpu"), demo
    assert tests == "bash .ci/run"
    assert CI_RUN.is_file()


def test_the_demo_installs_the_torch_that_ci_pins():
    demo = _commands(_setup_block())[0]
    assert _pin(demo) == _pin(_ci_torch_line())


def test_the_readme_says_which_extras_ci_installs():
    said = next(line for line in _setup_block() if line.lstrip().startswith("#") and "pip:" in line)
    extras = re.search(r"pip: \.\[([^\]]*)\]", said)
    assert extras, f"the CI comment names no pip extras: {said}"
    assert extras.group(1) == _extras(_ci_install_line())


def test_the_test_commands_in_the_docs_are_the_ones_ci_runs():
    final = [line for line in _ci_lines() if "pytest" in line][-1]
    development = DEVELOPMENT.read_text()
    commands = _commands(FENCE.search(development).group(0).splitlines()[1:-1])
    runs = [c.split("#")[0].strip() for c in commands]
    assert final in runs, f"docs/development.md never gives .ci/run's test command {final!r}"
    assert "python -m pytest -q tests/unit" in runs
    install = next(c for c in runs if "pip install" in c)
    assert _extras(install) == _extras(_ci_install_line())
    assert _pin(install) == _pin(_ci_torch_line())
