"""Table tests of SILLYPROXY_WORKERS and of `auto`: the affinity mask and cgroup quotas, from fake files."""

from __future__ import annotations

from pathlib import Path

from sillyproxy._cpus import available_cpus, cgroup_cpu_limit, parse_workers, workers_for

from .support import TableTests, rows
from .certificates import temporary_directory


def _tree(test: TableTests, files: dict[str, str]) -> Path:
    root = temporary_directory(test)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


class ParseWorkersTests(TableTests):
    @rows(("1", 1), (" 4 ", 4), ("256", 256), ("auto", None), ("AUTO", None))
    def test_accepted(self, text: str, workers: int | None) -> None:
        """If SILLYPROXY_WORKERS is a number or auto, then that is the count (None: count the CPUs)."""
        self.assertEqual(parse_workers(text), workers)

    @rows(("0",), ("-1",), ("257",), ("two",), ("1.5",), ("9" * 5000,))
    def test_refused(self, text: str) -> None:
        """If SILLYPROXY_WORKERS is anything else, then it is refused, saying what is allowed."""
        caught = self.assertRaises(ValueError, parse_workers, text)
        self.assertEqual(str(caught), "must be auto or a whole number from 1 to 256")


class WorkersForTests(TableTests):
    @rows(
        (8, None, 8),
        (8, 2.0, 2),
        (8, 1.5, 1),
        (8, 0.5, 1),
        (2, 4.0, 2),
        (1, None, 1),
    )
    def test_affinity_capped_by_quota(self, affinity: int, limit: float | None, workers: int) -> None:
        """If a quota is set, then it caps the affinity's count, rounded down, and there is always one worker."""
        self.assertEqual(workers_for(affinity, limit), workers)


class CgroupTests(TableTests):
    @rows(
        # cgroup v2 in a container (cgroupns: the path is /).
        ({"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "200000 100000\n"}, 2.0),
        ({"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "max 100000\n"}, None),
        ({"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "150000 100000\n"}, 1.5),
        # cgroup v2 on a host: the process's own cgroup, and a tighter parent.
        (
            {
                "proc/self/cgroup": "0::/system.slice/app.service\n",
                "sys/fs/cgroup/system.slice/app.service/cpu.max": "400000 100000\n",
                "sys/fs/cgroup/system.slice/cpu.max": "300000 100000\n",
            },
            3.0,
        ),
        # cgroup v1, the cpu controller mounted as cpu,cpuacct.
        (
            {
                "proc/self/cgroup": "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n",
                "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "50000\n",
                "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
            },
            0.5,
        ),
        (
            {
                "proc/self/cgroup": "4:cpu,cpuacct:/\n",
                "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            },
            None,
        ),
        # Nothing readable, or garbage: no limit.
        ({}, None),
        ({"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "lots\n"}, None),
    )
    def test_quota(self, files: dict[str, str], limit: float | None) -> None:
        """If a cgroup (v1 or v2, here or above) sets a CPU quota, then the tightest is the limit."""
        self.assertEqual(cgroup_cpu_limit(_tree(self, files)), limit)

    @rows(
        ({0, 1, 2, 3}, "100000 100000\n", 1),
        ({0, 1, 2, 3}, "300000 100000\n", 3),
        ({0, 1, 2, 3}, "max 100000\n", 4),
        ({2, 5}, "max 100000\n", 2),
        ({7}, "800000 100000\n", 1),
    )
    def test_available_cpus_reads_both(self, affinity: set[int], cpu_max: str, workers: int) -> None:
        """If the affinity mask and the cgroup quota are given, then auto is the affinity's count capped by the quota."""
        root = _tree(self, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": cpu_max})
        self.assertEqual(available_cpus(root, affinity), workers)
