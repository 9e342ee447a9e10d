"""A small process that starts the benchmark's runs, so each run's peak RSS is its own.

Linux carries a process's peak RSS across exec, and Python's subprocess starts children with vfork,
whose pre-exec memory is the parent's: measured from the benchmark (a TLS server, cryptography, ...)
every child would report the benchmark's own peak. This process stays small, forks, and reports what
os.wait4 says. Protocol: one JSON request per line on stdin (argv, env, stdin/stdout/stderr paths), one
JSON line back (wall and CPU seconds, peak RSS in KiB, exit status). Runs with `python -S`.
"""

import json
import os
import sys
import time


def serve() -> None:
    for line in sys.stdin:
        job = json.loads(line)
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            try:
                write = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                for fd, (path, flags) in enumerate(
                    [(job["stdin"], os.O_RDONLY), (job["stdout"], write), (job["stderr"], write)]
                ):
                    os.dup2(os.open(path, flags, 0o600), fd)
                os.execve(job["argv"][0], job["argv"], job["env"])
            finally:
                os._exit(127)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
        cpu = usage.ru_utime + usage.ru_stime
        code = os.waitstatus_to_exitcode(status)
        print(json.dumps({"wall": wall, "cpu": cpu, "max_rss": usage.ru_maxrss, "code": code}))
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
