"""The job a runner runs: a case in one environment on one platform."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ci_golden.goldens.discover import Job, TestCase, golden_name


@dataclass(frozen=True)
class JobSpec:
    """What to run: a case in one environment on one platform, with the matrix entry's settings."""

    case: TestCase
    environment: str
    platform: str
    golden: Path | None
    out: Path
    n_repeat: int = 1
    time_limit: int = 3600
    nodes: int = 1
    gpus: int = 0
    fail_fast: bool = True  # stop the run at its first certain failure

    @property
    def job(self) -> Job:
        return Job(self.case.id, self.environment, self.platform, self.golden)

    @property
    def actual_name(self) -> str:
        return (
            self.golden.name
            if self.golden is not None
            else golden_name(self.environment, self.platform)
        )
