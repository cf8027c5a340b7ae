"""The Argo CD health check deploy/argocd/health.lua, run by a real Lua 5.1 runtime.

The cases live in deploy/argocd/health_test.yaml in Argo CD's own `resource_customizations` test
format (`tests: [{healthStatus: {status, message}, inputPath}]`), so the same files can be
upstreamed. Argo CD runs the script with gopher-lua (Lua 5.1) and a global `obj` built from the
object's JSON; this test does the same with lupa's Lua 5.1 runtime and only the libraries that
Argo CD opens for health scripts.
"""

from __future__ import annotations

import copy
import datetime
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

# lupa (a pinned dev dependency) ships Lua 5.1, the language level of Argo CD's gopher-lua.
lua_module: Any = importlib.import_module("lupa.lua51")

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ARGOCD_DIR = ROOT / "deploy" / "argocd"
HEALTH_LUA = ARGOCD_DIR / "health.lua"
HEALTH_TEST = ARGOCD_DIR / "health_test.yaml"
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended"}

# Globals that Argo CD's Lua VM does not offer to health scripts (it opens base, table, string,
# math only): a script that reaches for them must fail here as it would in Argo CD.
FORBIDDEN_GLOBALS = ("os", "io", "debug", "package", "require", "dofile", "loadfile", "load", "loadstring")


def _load_cases() -> list[dict[str, Any]]:
    document = yaml.safe_load(HEALTH_TEST.read_text())
    return list(document["tests"])


CASES = _load_cases()


def _jsonish(value: Any) -> Any:
    """YAML scalars as Argo CD sees them after a JSON round trip (timestamps are strings)."""
    if isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def to_lua(runtime: Any, value: Any) -> Any:
    """Convert a YAML-loaded value into Lua values: dicts to tables, lists to 1-indexed tables."""
    if isinstance(value, dict):
        table = runtime.table()
        for key, item in value.items():
            if item is not None:
                table[key] = to_lua(runtime, item)
        return table
    if isinstance(value, list):
        table = runtime.table()
        for index, item in enumerate(value, start=1):
            table[index] = to_lua(runtime, item)
        return table
    return _jsonish(value)


def run_health(obj: dict[str, Any]) -> dict[str, Any]:
    """Run health.lua on one object in a fresh sandboxed Lua 5.1 runtime; return `hs` as a dict."""
    runtime = lua_module.LuaRuntime(register_eval=False, register_builtins=False)
    lua_globals = runtime.globals()
    for name in FORBIDDEN_GLOBALS:
        lua_globals[name] = None
    lua_globals.obj = to_lua(runtime, obj)
    result = runtime.execute(HEALTH_LUA.read_text())
    assert lua_module.lua_type(result) == "table", "health.lua must return the hs table"
    return dict(result.items())


def _load_input(case: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ARGOCD_DIR / case["inputPath"]).read_text())
    return loaded


def test_lua_runtime_is_lua51() -> None:
    runtime = lua_module.LuaRuntime()
    assert runtime.eval("_VERSION") == "Lua 5.1"


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_case(case: dict[str, Any]) -> None:
    obj = _load_input(case)
    assert obj["apiVersion"] == "goldrush.dev/v1alpha1"
    assert obj["kind"] == "GoldRushPipeline"
    hs = run_health(obj)
    assert set(hs) == {"status", "message"}
    assert hs["status"] == case["healthStatus"]["status"]
    assert hs["message"] == case["healthStatus"]["message"]


def test_cases_cover_every_status_and_every_testdata_file() -> None:
    assert {case["healthStatus"]["status"] for case in CASES} == ARGO_STATUSES
    referenced = sorted(case["inputPath"] for case in CASES)
    assert len(referenced) == len(set(referenced)), "each testdata file is used by one case"
    on_disk = sorted(f"testdata/{path.name}" for path in (ARGOCD_DIR / "testdata").glob("*.yaml"))
    assert referenced == on_disk
    for case in CASES:
        assert case["healthStatus"]["status"] in ARGO_STATUSES
        assert case["healthStatus"]["message"], "every case pins the message too"


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if "status" in _load_input(c)],
    ids=lambda c: Path(c["inputPath"]).stem,
)
def test_a_newer_generation_is_always_progressing(case: dict[str, Any]) -> None:
    """Whatever the status says, it is stale once metadata.generation moves past it."""
    obj = copy.deepcopy(_load_input(case))
    observed = obj["status"].get("observedGeneration") or 0
    obj["metadata"]["generation"] = observed + 1
    hs = run_health(obj)
    assert hs == {"status": "Progressing", "message": "Waiting for the operator to observe the latest spec"}


def test_synced_false_is_never_healthy() -> None:
    """The Crossplane lesson: Ready=True must not hide Synced=False, whatever the reason."""
    base = _load_input(next(c for c in CASES if c["inputPath"].endswith("healthy_running.yaml")))
    for reason in ("ApiError", "UpdatePending", "SecretNotFound", "NameConflict", "SomethingNew"):
        obj = copy.deepcopy(base)
        for condition in obj["status"]["conditions"]:
            if condition["type"] == "Synced":
                condition.update(status="False", reason=reason, message=f"not synced: {reason}")
        hs = run_health(obj)
        assert hs["status"] in {"Progressing", "Degraded"}, reason
        assert hs["message"] == f"not synced: {reason}"


def test_stalled_wins_over_ready_true() -> None:
    base = _load_input(next(c for c in CASES if c["inputPath"].endswith("healthy_running.yaml")))
    obj = copy.deepcopy(base)
    obj["status"]["conditions"].append(
        {"type": "Stalled", "status": "True", "reason": "AuthFailed", "message": "HTTP 401"}
    )
    assert run_health(obj) == {"status": "Degraded", "message": "HTTP 401"}


def test_paused_spec_needs_the_remote_to_be_paused() -> None:
    """spec.paused alone is not Suspended: the remote must report PAUSED with Ready=True/Paused."""
    base = _load_input(next(c for c in CASES if c["inputPath"].endswith("suspended_paused.yaml")))
    still_running = copy.deepcopy(base)
    still_running["status"]["phase"] = "RUNNING"
    assert run_health(still_running)["status"] == "Healthy"
    unpaused = copy.deepcopy(base)
    unpaused["spec"]["paused"] = False
    assert run_health(unpaused)["status"] == "Healthy"
    other_reason = copy.deepcopy(base)
    for condition in other_reason["status"]["conditions"]:
        if condition["type"] == "Ready":
            condition["reason"] = "Running"
    assert run_health(other_reason)["status"] == "Healthy"


def test_script_uses_no_library_outside_argo_sandbox() -> None:
    source = HEALTH_LUA.read_text()
    for name in ("os.", "io.", "require", "debug.", "loadstring", "dofile"):
        assert name not in source, name
    assert source.rstrip().endswith("return hs")


def test_installation_docs_register_the_check() -> None:
    docs = (ROOT / "docs" / "installation.md").read_text()
    assert "resource.customizations.health.goldrush.dev_GoldRushPipeline" in docs
    assert "deploy/argocd/health.lua" in docs
