"""`goldrush-operator import` against the simulator over real HTTP: every page is listed, only the key's group
is seen, filters, stdout and `-o DIR` output, progress lines, reads only, and no secret value in any output."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.operator import operator_executable
from support.sim import SimProcess, example_pipeline

pytestmark = pytest.mark.sim

SECRET = "Sim-S3cret-9d2"


@pytest.fixture
def small_pages() -> Iterator[SimProcess]:
    """A simulator whose list pages hold at most 4 pipelines (the client asks for 100)."""
    with SimProcess.start("--service-key", "dev-key=group_default", "--service-key", "other-key=group_other",
                          "--default-page-size", "4", "--max-page-size", "4") as process:
        yield process


def run_import(sim: SimProcess, *args: str, key: str = "dev-key") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLDRUSH_")}
    env.update(GOLDRUSH_API_URL=sim.base_url, GOLDRUSH_SERVICE_KEY=key, KUBECONFIG=os.devnull)
    return subprocess.run([operator_executable(), "import", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def create(sim: SimProcess, key: str = "dev-key", **fields: Any) -> dict[str, Any]:
    response = sim.api("POST", "", json=example_pipeline(**fields), key=key)
    assert response.status_code in (200, 201), response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def _pg(name: str, project: str = "proj-a") -> dict[str, Any]:
    return {"name": name, "project": project, "transforms": {},
            "destination_config": {"type": "postgres", "url": "postgresql://db/x", "user": "u", "password": SECRET}}


def test_import_lists_every_page_of_the_keys_group_only(small_pages: SimProcess, tmp_path: Path) -> None:
    sim = small_pages
    ids = {create(sim, **_pg(f"prod-{i}", "proj-a" if i % 2 else "proj-b"))["id"] for i in range(9)}
    webhook = create(sim, name="Hooks to Receiver", project="proj-a", destination_type="webhook", transforms={},
                     destination_config={"type": "webhook", "url": "https://h.example/in",
                                         "headers": {"Authorization": SECRET}})
    ids.add(webhook["id"])
    foreign = create(sim, key="other-key", **_pg("prod-foreign"))
    before = len(sim.journal())

    proc = run_import(sim, "-n", "team-a")
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    assert {d["metadata"]["annotations"]["goldrush.dev/pipeline-id"] for d in docs} == ids
    assert foreign["id"] not in proc.stdout
    assert all(d["metadata"]["namespace"] == "team-a" and d["kind"] == "GoldRushPipeline" for d in docs)
    hook = next(d for d in docs if d["spec"].get("pipelineName") == "Hooks to Receiver")
    assert hook["metadata"]["name"] == "hooks-to-receiver"
    assert hook["spec"]["destination"]["secretRefs"] == {
        "headers.Authorization": {"name": "hooks-to-receiver-destination", "key": "headers.Authorization"}}
    assert "--from-literal=headers.Authorization=" in proc.stdout
    # Progress on a pipe: lines, ending with the count; the Secrets to create are listed; no value anywhere.
    assert "listed 10 pipelines" in proc.stderr
    assert "imported 10 pipelines" in proc.stderr
    assert "team-a/hooks-to-receiver-destination: headers.Authorization" in proc.stderr
    assert "no Kubernetes configuration" in proc.stderr  # the managed check could not run: said so
    assert SECRET not in proc.stdout + proc.stderr
    # Reads only: 3 pages of at most 4.
    entries = sim.journal()[before:]
    assert [e["method"] for e in entries] == ["GET"] * 3 and {e["route"] for e in entries} == {"list"}

    # Filters: project and name glob (repeatable), into a directory, one file per pipeline.
    out = tmp_path / "out"
    proc = run_import(sim, "-n", "team-a", "--project", "proj-a", "--name", "prod-*", "--name", "Hooks*",
                      "-o", str(out), "--include-managed", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and "listing" not in proc.stderr and "Kubernetes" not in proc.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([f"prod-{i}.yaml" for i in range(1, 9, 2)] + ["hooks-to-receiver.yaml"])
    loaded = yaml.safe_load((out / "prod-1.yaml").read_text())
    assert loaded["spec"]["pipelineName"] == "prod-1" and loaded["spec"]["project"] == "proj-a"
    assert loaded["spec"]["destination"]["secretRefs"]["password"] == {"name": "prod-1-destination",
                                                                       "key": "password"}


def test_import_reports_what_it_cannot_express(sim: SimProcess) -> None:
    good = create(sim, **_pg("good"))
    odd = create(sim, **{**_pg("odd"), "destination_config": {"type": "postgres", "url": "postgresql://db/x",
                                                              "user": "u", "password": SECRET, "sslmode": "x"}})
    proc = run_import(sim, "-n", "ns", "--include-managed", "--observe")
    assert proc.returncode == 1, proc.stderr
    assert f"skipped {odd['id']} 'odd'" in proc.stderr and "destination_config.sslmode" in proc.stderr
    assert "1 could not be imported exactly" in proc.stderr
    (doc,) = yaml.safe_load_all(proc.stdout)
    assert doc["metadata"]["annotations"]["goldrush.dev/pipeline-id"] == good["id"]
    assert doc["spec"]["managementPolicies"] == ["Observe"]


def test_import_errors_are_clear(sim: SimProcess) -> None:
    proc = run_import(sim, "--include-managed", key="wrong-key")
    assert proc.returncode == 1 and "error: GoldRush API" in proc.stderr and "wrong-key" not in proc.stderr
    assert "Traceback" not in proc.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLDRUSH_")}
    proc = subprocess.run([operator_executable(), "import"], env={**env, "GOLDRUSH_API_URL": sim.base_url},
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "no service key" in proc.stderr
    proc = run_import(sim, "--service-key-secret", "nokey")
    assert proc.returncode == 2 and "SECRET/KEY" in proc.stderr
