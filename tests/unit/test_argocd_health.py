"""The Argo CD health check deploy/argocd/health.lua, run by Argo CD's own Go code and by lupa.

The cases live in deploy/argocd/health_test.yaml in Argo CD's own `resource_customizations` test
format (`tests: [{healthStatus: {status, message}, inputPath}]`), so the same files can be
upstreamed. Every case runs twice:

- through Argo CD itself (`support.argocd`: argo-cd v3 `util/lua`, `util/settings` and gitops-engine's
  `health.GetResourceHealth`, the script registered in argocd-cm): the verdict Argo CD shows;
- through lupa's Lua 5.1 runtime (Argo CD's gopher-lua is Lua 5.1) with a global `obj` built from the
  object, for the property tests below, which would be slow as one Go process per variant.

A differential test runs every object the lupa tests use through Argo CD too, and requires the same
answer, so the lupa tests stand for Argo CD.
"""

from __future__ import annotations

import copy
import datetime
import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import argocd, kstatus, verdicts

# lupa (a pinned dev dependency) ships Lua 5.1, the language level of Argo CD's gopher-lua.
lua_module: Any = importlib.import_module("lupa.lua51")

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ARGOCD_DIR = ROOT / "deploy" / "argocd"
HEALTH_LUA = ARGOCD_DIR / "health.lua"
HEALTH_TEST = ARGOCD_DIR / "health_test.yaml"
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended"}

# Argo CD runs a health script from argocd-cm with only gopher-lua's base, package and table libraries
# (util/lua, `SkipOpenLibs` unless `useOpenLibs` is set): no `string`, `math`, `io`, `debug` or `os`
# global (test_argo_cd_sandbox_has_no_string_library shows it). lupa takes them away too, and the file
# and code loaders on top, so that the script can need none of them.
FORBIDDEN_GLOBALS = ("string", "math", "os", "io", "debug", "coroutine", "package", "require", "dofile",
                     "loadfile", "load", "loadstring")


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


@pytest.fixture(scope="module")
def argocd_bin() -> Path:
    try:
        return argocd.ensure_binary()
    except argocd.ArgoCDUnavailable as exc:
        pytest.fail(f"the Argo CD health tests need their Go probe: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def kstatus_bin() -> Path:
    try:
        return kstatus.ensure_binary()
    except kstatus.KstatusUnavailable as exc:
        pytest.fail(f"the verdict tests need the kstatus probe: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def argo_verdicts(argocd_bin: Path) -> dict[str, dict[str, str]]:
    """Argo CD's result on every case, by inputPath, from one probe process."""
    objects = [_load_input(case) for case in CASES]
    results = argocd.compute_many(argocd_bin, objects)
    return {case["inputPath"]: result for case, result in zip(CASES, results, strict=True)}


def test_lua_runtime_is_lua51() -> None:
    runtime = lua_module.LuaRuntime()
    assert runtime.eval("_VERSION") == "Lua 5.1"


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_case(case: dict[str, Any]) -> None:
    obj = _load_input(case)
    assert obj["apiVersion"] == "goldrush.dev/v1alpha1"
    assert obj["kind"] in ("GoldRushPipeline", "GoldRushCredentials", "ClusterGoldRushCredentials")
    hs = run_health(obj)
    assert set(hs) == {"status", "message"}
    assert hs["status"] == case["healthStatus"]["status"]
    assert hs["message"] == case["healthStatus"]["message"]


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_case_in_argo_cd(case: dict[str, Any], argo_verdicts: dict[str, dict[str, str]]) -> None:
    result = argo_verdicts[case["inputPath"]]
    assert result["error"] == ""
    assert {"status": result["status"], "message": result["message"]} == case["healthStatus"]


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
    for kind in ("GoldRushPipeline", "GoldRushCredentials", "ClusterGoldRushCredentials"):
        assert f"resource.customizations.health.goldrush.dev_{kind}" in docs, kind
    assert "deploy/argocd/health.lua" in docs
    judged = {_load_input(case)["kind"] for case in CASES}  # every registered kind has recorded snapshots
    assert judged == {"GoldRushPipeline", "GoldRushCredentials"}, judged


def _variants() -> list[tuple[str, dict[str, Any]]]:
    """Every object the lupa tests above judge: the cases and their mutations."""
    out: list[tuple[str, dict[str, Any]]] = []
    for case in CASES:
        obj = _load_input(case)
        stem = Path(case["inputPath"]).stem
        out.append((stem, obj))
        if "status" in obj:
            newer = copy.deepcopy(obj)
            newer["metadata"]["generation"] = (obj["status"].get("observedGeneration") or 0) + 1
            out.append((f"{stem}/newer-generation", newer))
            for kind, status, reason in (("Stalled", "True", "AuthFailed"), ("Reconciling", "True", "Retrying"),
                                         ("Synced", "False", "SomethingNew"), ("Ready", "False", "RemoteFailed")):
                mutated = copy.deepcopy(obj)
                conditions = [c for c in mutated["status"].get("conditions") or [] if c["type"] != kind]
                conditions.append({"type": kind, "status": status, "reason": reason, "message": f"{kind} {reason}"})
                mutated["status"]["conditions"] = conditions
                out.append((f"{stem}/{kind}={status}:{reason}", mutated))
    paused = _load_input(next(c for c in CASES if c["inputPath"].endswith("suspended_paused.yaml")))
    for field, value in (("phase", "RUNNING"), ("phase", "FAILED"), ("phase", None)):
        mutated = copy.deepcopy(paused)
        mutated["status"][field] = value
        out.append((f"suspended_paused/{field}={value}", mutated))
    return out


def test_lupa_and_argo_cd_agree_on_every_variant(argocd_bin: Path) -> None:
    variants = _variants()
    argo = argocd.compute_many(argocd_bin, [obj for _, obj in variants])
    mismatches = []
    for (name, obj), result in zip(variants, argo, strict=True):
        lupa = run_health(obj)
        if result["error"] or {"status": result["status"], "message": result["message"]} != lupa:
            mismatches.append(f"{name}: Argo CD {result}, lupa {lupa}")
    assert not mismatches, "\n".join(mismatches)
    assert len(variants) > 5 * len(CASES)


def test_argo_cd_shows_an_object_being_deleted_as_progressing(argocd_bin: Path) -> None:
    """The controller's entry point (gitops-engine health.GetResourceHealth) answers before the script does."""
    obj = _load_input(next(c for c in CASES if c["inputPath"].endswith("healthy_running.yaml")))
    obj["metadata"]["deletionTimestamp"] = "2026-01-15T10:05:00Z"
    obj["metadata"]["finalizers"] = ["goldrush.dev/finalizer"]
    assert argocd.compute(argocd_bin, obj) == {"status": "Progressing", "message": "Pending deletion", "error": ""}


def test_argo_cd_sandbox_has_no_string_library(argocd_bin: Path, tmp_path: Path) -> None:
    """What the lupa sandbox takes away is really missing in Argo CD: a script using it is Unknown there."""
    obj = _load_input(CASES[0])
    for library, call in (("string", 'string.format("%s", "Healthy")'), ("math", "math.max(1, 2)"),
                          ("os", "os.time()")):
        script = tmp_path / f"{library}.lua"
        script.write_text(f'local hs = {{}}\nhs.status = "Healthy"\nhs.message = tostring({call})\nreturn hs\n')
        result = argocd.compute(argocd_bin, obj, script)
        assert result["status"] == "Unknown", library
        assert f"attempt to index a non-table object(nil) with key '{call.split('.')[1].split('(')[0]}'" \
            in result["error"], library


def test_argo_cd_rejects_an_invalid_status(argocd_bin: Path, tmp_path: Path) -> None:
    script = tmp_path / "invalid.lua"
    script.write_text('return { status = "Fine", message = "all good" }\n')
    assert argocd.compute(argocd_bin, _load_input(CASES[0]), script) == {
        "status": "Unknown", "message": "Lua returned an invalid health status", "error": ""}


@pytest.mark.parametrize(("argo", "kstatus_status", "expected"), [
    ("Healthy", "Current", True), ("Progressing", "InProgress", True), ("Progressing", "Terminating", True),
    ("Degraded", "Failed", True), ("Suspended", "Current", True), ("Missing", "NotFound", True),
    ("Unknown", "Unknown", True),
    ("Healthy", "InProgress", False), ("Healthy", "Failed", False), ("Progressing", "Current", False),
    ("Degraded", "Current", False), ("Degraded", "InProgress", False), ("Suspended", "InProgress", True),
    ("Suspended", "Failed", False),
    ("Unknown", "Current", False), ("", "Current", False),
])
def test_agree_maps_the_two_vocabularies(argo: str, kstatus_status: str, expected: bool) -> None:
    assert verdicts.agree(argo, kstatus_status) is expected
    assert verdicts.agree({"status": argo, "message": ""}, {"status": kstatus_status}) is expected


def _readme_table() -> dict[str, tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### What Argo CD and Flux show", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| [^|]+ \| `([a-z_]+)` \| (\w+) \| (\w+) \|", section, flags=re.M)
    return {case: (argo, flux) for case, argo, flux in rows}


def test_snapshots_are_the_readme_table() -> None:
    """Every README row has a recorded snapshot (tests/e2e/test_health_snapshots.py) and no snapshot is extra."""
    cases = {Path(c["inputPath"]).stem for c in CASES}
    assert cases == set(_readme_table())


def _readme_condition_reasons() -> dict[str, set[str]]:
    """condition type -> every reason the README's condition table names for it (Paused and Completed too)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("| condition | True when | False / reasons |", 1)[1].split("\n\n", 1)[0]
    out: dict[str, set[str]] = {}
    for ctype, rest in re.findall(r"^\| `(\w+)` \|(.*)$", section, flags=re.M):
        out[ctype] = set(re.findall(r"`([A-Z][A-Za-z]+)`", rest)) - {"RUNNING", "PAUSED", "FAILED", "STOPPED",
                                                                      "Ready", "Synced", "Stalled", "Reconciling"}
    return out


def test_every_reason_of_the_readme_condition_table_has_a_snapshot() -> None:
    """Issue contract: the snapshots cover every reason the README promises for Ready, Synced, Stalled (the
    conditions Argo CD and kstatus judge by); Paused and Completed are Ready=True reasons, also covered."""
    promised = _readme_condition_reasons()
    assert {"Ready", "Synced", "Reconciling", "Stalled"} <= set(promised)
    recorded: dict[str, set[str]] = {}
    for case in CASES:
        for c in _load_input(case)["status"].get("conditions", []):
            recorded.setdefault(c["type"], set()).add(c["reason"])
    for ctype in ("Ready", "Synced"):
        assert promised[ctype] - recorded.get(ctype, set()) == set(), ctype
    every = set().union(*recorded.values())
    assert promised["Stalled"] | promised["Reconciling"] <= every | {"Retrying"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: Path(c["inputPath"]).stem)
def test_verdicts_of_both_tools_agree_and_match_the_readme(case: dict[str, Any], argocd_bin: Path,
                                                           kstatus_bin: Path) -> None:
    both = verdicts.verdicts(_load_input(case))
    assert both.agree, (both.argo, both.kstatus["status"])
    assert (both.argo["status"], both.kstatus["status"]) == _readme_table()[Path(case["inputPath"]).stem]


def test_the_installation_guides_rule_table_names_only_what_the_script_compares() -> None:
    """docs/installation.md describes the script rule by rule; every condition reason it names (two words or
    more, e.g. `UpdateNotAllowed`) is one the script compares against, and every remote phase and reason the
    script compares against is named there. A table that drifted from the script (rules for reasons it never
    reads) fails."""
    guide = (ROOT / "docs" / "installation.md").read_text()
    start = guide.index("| object | health |")
    table = guide[start:guide.index("\n\n", start)]
    script = HEALTH_LUA.read_text()
    literals = set(re.findall(r'"([A-Za-z]+)"', script)) | set(re.findall(r"^\s+([A-Z]+) = true,", script, re.M))
    named = set(re.findall(r"`([A-Za-z]+)`", table))
    reasons = {n for n in named if re.fullmatch(r"(?:[A-Z][a-z]+){2,}", n)}
    assert reasons <= literals, sorted(reasons - literals)
    compared = set(re.findall(r'reason [=~]= "([A-Za-z]+)"', script)) | set(re.findall(r'phase == "([A-Z]+)"', script))
    compared |= set(re.findall(r"^\s+([A-Z]+) = true,", script, re.M))
    assert compared and compared <= named, sorted(compared - named)
