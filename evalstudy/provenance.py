"""Which code and which packages produced a number: the git commit and the versions of the
packages that change results (the sampler, the VAE decoding, a statistic).

Standard library only, and nothing is imported to learn its version (the metadata of the
installed distribution is read), so a benchmark, the statistics CLI and the web app's exports
can all call it without pulling torch or Django in.
"""
from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

# The packages whose versions a results file names: those that can move a number with no change
# in our code.
PACKAGES = ("torch", "diffusers", "transformers", "numpy", "scipy", "django")

_ROOT = Path(__file__).resolve().parent.parent


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """``{name: installed version}`` in the order given; None for a package that is not
    installed."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@dataclass(frozen=True)
class GitCommit:
    """The checked-out commit, and whether tracked files differ from it."""

    sha: str     # full 40-hex SHA of HEAD
    dirty: bool  # tracked files changed since that commit (untracked files are not counted)

    def __str__(self) -> str:
        return f"{self.sha} (uncommitted changes)" if self.dirty else self.sha


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)


def git_commit(root: str | Path | None = None) -> GitCommit | None:
    """The commit checked out at ``root`` (default: this repository), or None where there is
    no git or no repository (an installed copy without its .git)."""
    root = Path(root) if root is not None else _ROOT
    try:
        head = _git(root, "rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            return None
        # --refresh first: a file touched but unchanged must not count as a change.
        _git(root, "update-index", "-q", "--refresh")
        diff = _git(root, "diff-index", "--quiet", "HEAD", "--")
    except (OSError, subprocess.TimeoutExpired):
        return None
    return GitCommit(sha=head.stdout.strip(), dirty=diff.returncode != 0)


@dataclass(frozen=True)
class Provenance:
    """What a results file or an exported report records about how it was made."""

    commit: GitCommit | None
    packages: dict[str, str | None]

    def as_dict(self) -> dict[str, object]:
        """The JSON form: ``{"commit": sha or None, "dirty": bool or None, "packages": {...}}``."""
        return {
            "commit": self.commit.sha if self.commit else None,
            "dirty": self.commit.dirty if self.commit else None,
            "packages": dict(self.packages),
        }

    def line(self) -> str:
        """One line for a text results file, e.g.
        ``commit 9f6896...c1 | torch 2.13.0+cpu, diffusers 0.42.1, ..., django 5.2.19``."""
        versions = ", ".join(f"{name} {version or 'not installed'}" for name, version in self.packages.items())
        return f"commit {self.commit or 'unknown (no git checkout)'} | {versions}"


def collect(root: str | Path | None = None, names: Iterable[str] = PACKAGES) -> Provenance:
    """The commit at ``root`` and the versions of ``names``, now."""
    return Provenance(commit=git_commit(root), packages=package_versions(names))
