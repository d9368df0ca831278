"""An accessibility audit of a page: axe-core (axe-playwright-python's bundled copy) run in the
page, for the rules of WCAG 2.0 and 2.1 at levels A and AA.

A finding of impact "serious" or "critical" counts; each is kept as one line naming the page,
the rule and the element, so that a test's failure says what to fix where. Used by
tests/e2e/test_screenshots.py (the walk through a study) and tests/e2e/test_accessibility.py
(the other pages an evaluator can meet).
"""
from __future__ import annotations

from collections.abc import Iterable

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

AXE = Axe()
# The rules axe tags as WCAG 2.0 / 2.1, A / AA (not its "best-practice" ones).
WCAG_21_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
              "resultTypes": ["violations"]}
FAILING_IMPACTS = ("serious", "critical")


class Audit:
    """axe's findings on every page of one browser size that ``look`` was called on."""

    def __init__(self, size: str) -> None:
        self.size = size
        self.findings: list[str] = []
        self.pages: list[str] = []

    def look(self, page: Page, name: str) -> None:
        page.wait_for_load_state("load")
        self.pages.append(name)
        for rule in AXE.run(page, options=WCAG_21_AA).response["violations"]:
            if rule["impact"] not in FAILING_IMPACTS:
                continue
            for node in rule["nodes"]:
                html = " ".join(node["html"].split())[:160]
                self.findings.append(f"{self.size}, {name}: {rule['id']} ({rule['impact']}: {rule['help']}) "
                                     f"at {' '.join(map(str, node['target']))}: {html}")


def assert_accessible(audits: Iterable[Audit]) -> None:
    """Fail with every finding of every audit, one a line."""
    findings = [line for audit in audits for line in audit.findings]
    assert not findings, "axe (WCAG 2.1 A/AA) found:\n" + "\n".join(findings)
