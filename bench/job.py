"""What the CI/CD component costs a job, measured in a real GitLab CI engine: gitlab-ci-local (shell
executor, each job in its own directory, GitLab's cache between runs), as `make e2e-tools` installs it.

Three jobs, their durations as gitlab-ci-local reports them (the engine's own start-up left out):
a job that only runs `true`; a job that extends `.authress-gitlab-token` and runs `true`, cold (empty
GitLab cache and pip cache: a venv, pip, and the helper built from the hosted copy's git tag, its
dependencies from the package index) and warm (the cache of the previous run restored). The component
verifies a token from a local issuer (check: none). Rounds interleave the three, so load from
elsewhere hits them alike. Targets on 2 cores: warm <= 3 s, cold <= 20 s (docs/component.md, "Cost").
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from authress_gitlab_token import __version__  # noqa: E402
from tests.e2e.gitlab_ci_local import Engine, JobRun, release  # noqa: E402
from tests.e2e.toolchain import cache_dir  # noqa: E402
from tests.fixtures.ca import LocalCA  # noqa: E402
from tests.fixtures.gitlab_server import GitLabStandIn  # noqa: E402
from tests.fixtures.issuer import LocalIssuer  # noqa: E402
from tests.fixtures.tokens import SigningKey, gitlab_claims, mint  # noqa: E402

AUDIENCE = "https://bench-account.api.authress.io"
PIPELINE = """\
include:
  - local: templates/authress-token.yml
    inputs:
      audience: {audience}
      project_path: my-org/authress-configuration
      helper_repository: {repository}
      check: none

component:
  extends: .authress-gitlab-token
  script: ["true"]

plain:
  script: ["true"]
"""
# `--timestamps` lines: "[09:28:18  2.96 s] component $ true", the time since the job started.
STAMP = re.compile(r"^\[\S+\s+(?P<value>[\d.]+) (?P<unit>ms|s|min)\] (?P<job>\S+) (?P<what>.*)$", re.MULTILINE)
SECONDS = {"ms": 0.001, "s": 1.0, "min": 60.0}


def stamps(run: JobRun, job: str) -> list[tuple[float, str]]:
    return [(float(m["value"]) * SECONDS[m["unit"]], m["what"]) for m in STAMP.finditer(run.output) if m["job"] == job]


def measure(run: JobRun, job: str) -> tuple[float, float]:
    """The job's time (cache restore included) and its before_script's, in seconds, from the timestamps."""
    lines = stamps(run, job)
    finished = [t for t, what in lines if what.startswith("finished in")]
    begin = [t for t, what in lines if what.startswith('$ venv="$CI_PROJECT_DIR')]
    end = [t for t, what in lines if what == "$ true"]
    if not finished or not end:
        raise SystemExit(f"bench/job.py: {job} did not finish:\n{run.output[-3000:]}")
    return finished[0], end[0] - begin[0] if begin else 0.0


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--rounds", type=int, default=3, help="rounds of the three jobs (default 3)")
    args = options.parse_args()
    launcher = cache_dir() / "gitlab-ci-local" / "gitlab-ci-local"
    if not launcher.is_file() or not shutil.which("rsync"):
        print("bench/job.py: no gitlab-ci-local or rsync; run `make e2e-tools`", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="authress-bench-job-") as tmp_name:
        tmp = Path(tmp_name)
        ca = LocalCA.create(tmp / "ca")
        key = SigningKey.generate()
        issuer = LocalIssuer(ca, [key]).start()
        gitlab = GitLabStandIn(ca, tmp / "repos", "bench-job-token").start()
        try:
            project = tmp / "project"
            release(gitlab, project, __version__)
            repository = f"{gitlab.url}/platform/authress-gitlab-token.git"
            (project / "bench.yml").write_text(PIPELINE.format(audience=AUDIENCE, repository=repository))
            env = {"SSL_CERT_FILE": str(ca.ca_path), "GIT_SSL_CAINFO": str(ca.ca_path)}
            engine = Engine(str(launcher), project, tmp / "home", env)
            figures: dict[str, list[tuple[float, float]]] = {"plain": [], "cold": [], "warm": []}
            for round_number in range(args.rounds):
                token = mint(key, gitlab_claims(issuer.url, AUDIENCE, lifetime=3600))
                variables = {"CI_SERVER_URL": issuer.url, "AUTHRESS_ID_TOKEN": token}
                for name in figures:
                    if name == "cold":
                        shutil.rmtree(project / ".gitlab-ci-local" / "cache", ignore_errors=True)
                        engine.env["PIP_CACHE_DIR"] = str(tmp / f"pip-cache-{round_number}")  # a fresh runner's
                    job = "plain" if name == "plain" else "component"
                    figures[name].append(measure(engine.run([job], variables, file="bench.yml", timestamps=True), job))
        finally:
            gitlab.stop()
            issuer.stop()

    print(f"job-level cost of the component in gitlab-ci-local {args.rounds} rounds, median (min..max) in s:")
    for name, values in figures.items():
        jobs = [job for job, _ in values]
        line = f"  {name:5}  job {statistics.median(jobs):6.2f} ({min(jobs):.2f}..{max(jobs):.2f})"
        if name != "plain":
            scripts = [before for _, before in values]
            line += f"   before_script {statistics.median(scripts):6.2f} ({min(scripts):.2f}..{max(scripts):.2f})"
        print(line)
    print("  job: as gitlab-ci-local reports it, GitLab's cache restore and save included")
    print("  targets (2 cores): warm before_script <= 3 s, cold <= 20 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
