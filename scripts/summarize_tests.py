"""Print the test command's last line: pytest counts from the JUnit reports, then the stages that failed."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def count(reports: Path) -> dict[str, int]:
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for report in sorted(reports.glob("*.xml")):
        for suite in ET.parse(report).getroot().iter("testsuite"):
            for key in totals:
                totals[key] += int(suite.get(key, 0))
    return totals


def main() -> int:
    reports, stage_count, failed_stages = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    t = count(reports)
    failed = t["failures"] + t["errors"]
    passed = t["tests"] - failed - t["skipped"]
    stages = f"{stage_count - len(failed_stages)} of {stage_count} stages passed"
    if failed_stages:
        stages += f" (failed: {', '.join(failed_stages)})"
    print(f"{passed} passed, {failed} failed, {t['skipped']} skipped; {stages}")
    return 1 if failed or failed_stages or t["skipped"] else 0


if __name__ == "__main__":
    sys.exit(main())
