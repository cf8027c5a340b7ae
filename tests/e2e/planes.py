"""A private real control plane for an e2e test module or session (fails, never skips, when none can be built).

Used by tests/e2e/conftest.py (the session's plane), test_ops_helm.py and test_ops_rbac.py (their own planes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.ctlplane import ControlPlane, ControlPlaneUnavailable, ensure_binaries


@contextmanager
def running_plane(workdir: Path, extra_apiserver_args: list[str] | None = None) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver in `workdir`, stopped when the block ends."""
    try:
        paths = ensure_binaries()
    except ControlPlaneUnavailable as exc:
        pytest.fail(f"e2e tests need a real control plane: {exc}", pytrace=False)
    plane = ControlPlane(workdir, paths["KUBE_APISERVER"], paths["ETCD"],
                         extra_apiserver_args=list(extra_apiserver_args or []))
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()
