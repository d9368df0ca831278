"""Every command the README and docs/ show runs a script, module or management command that
exists, with options that script still defines.

Read statically (no command is run: the README's "Running a study" block is run whole by
tests/test_readme_block.py): a renamed flag, script or command that a page still shows is the
commonest way a documented command stops working as written. An option counts as defined
when its spelling ("--name") is in the script's source or in a project module the script
imports (bench/_common.py's shared flags, evalstudy's sub-command modules)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = ("bench", "evalstudy", "generator", "tools", "webapp")
# `python -m MODULE ...` (or `accelerate launch -m MODULE ...`), `python bench/NAME.py ...`,
# `python manage.py COMMAND ...`; the arguments run to the end of the command (a shell
# operator, a comment, the span's end).
COMMAND = re.compile(r"\b(?:python(?:3(?:\.11)?)?|accelerate\s+launch(?:\s+--[\w-]+(?:[ =]\d+)?)*)\s+"
                     r"(?:-m\s+(?P<module>[\w.]+)|(?P<script>bench/\w+\.py)"
                     r"|manage\.py\s+(?P<command>\w+))(?P<args>[^`|;&#\n]*)")
OPTION = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")
IMPORT = re.compile(r"^\s*(?:from\s+(\.?[\w.]*)\s+import\s+([\w, ()]+)|import\s+([\w.]+))", re.M)


def _snippets(text: str) -> list[str]:
    """The shell lines of a page: its code blocks (continued lines joined) and inline code."""
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    prose = re.sub(r"^```[a-z]*\n.*?^```", "", text, flags=re.S | re.M)
    return lines + re.findall(r"`([^`\n]+)`", prose)


def documented_commands() -> list[tuple[str, str, str, str]]:
    """(page, kind, target, arguments) of every python command the pages show."""
    out = []
    for page in PAGES:
        for snippet in _snippets(page.read_text()):
            for m in COMMAND.finditer(snippet):
                kind = next(k for k in ("module", "script", "command") if m.group(k))
                out.append((page.name, kind, m.group(kind), m.group("args")))
    return out


def _module_file(name: str) -> Path | None:
    base = ROOT / name.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__main__.py", base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _sources(path: Path) -> list[Path]:
    """``path`` and the project modules it imports (one level down)."""
    found = [path]
    package = path.parent.relative_to(ROOT).as_posix().replace("/", ".")
    for m in IMPORT.finditer(path.read_text()):
        names = [m.group(1) or m.group(3)]
        if m.group(1) is not None:  # from X import a, b: a and b may be modules of X
            names += [f"{m.group(1)}.{n.strip(' ()')}" for n in m.group(2).split(",") if n.strip(" ()")]
        for name in names:
            if name.startswith("."):
                name = package + name
            if name.split(".")[0] in PACKAGES and (module := _module_file(name.replace("..", "."))) is not None:
                found.append(module)
    return found


def _target(kind: str, target: str) -> Path | None:
    if kind == "script":
        return ROOT / target
    if kind == "module":
        return _module_file(target)
    commands = sorted(ROOT.glob(f"webapp/*/management/commands/{target}.py"))
    return commands[0] if commands else None


def test_the_pages_show_commands_of_every_kind():
    kinds = {kind for _, kind, _, _ in documented_commands()}
    assert kinds == {"module", "script", "command"}, kinds


@pytest.mark.parametrize(("page", "kind", "target", "args"), documented_commands(),
                         ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_a_documented_command_names_what_exists_with_options_it_defines(page, kind, target, args):
    if kind == "module" and target.split(".")[0] not in PACKAGES:
        pytest.skip(f"{target} is not this project's")  # pytest and the like
    path = _target(kind, target)
    if kind == "command" and path is None:
        from django.core.management import get_commands

        assert target in get_commands(), f"{page}: manage.py {target}: no such command"
        return  # one of Django's own, with Django's options
    assert path is not None and path.is_file(), f"{page}: {kind} {target} does not exist"
    source = "\n".join(p.read_text() for p in _sources(path))
    missing = [f"--{o}" for o in OPTION.findall(args) if f'"--{o}"' not in source and f"'--{o}'" not in source]
    assert not missing, f"{page}: {target} does not define {missing} (the page shows: {target}{args})"
