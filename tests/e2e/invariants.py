"""The reliability invariants I1-I7 (issue 6, docs/reliability.md), checked once the system is quiet.

One `Invariants` object per test: it remembers the foreign pipelines (I7), the objects deleted with policy
`Delete` (I2) and the operator processes whose logs must stay clean (I5). `check()` first waits until every
live object has converged (I3), then asserts all seven invariants and returns a summary for further asserts.

I1 no duplicates    each live object has exactly one remote pipeline (by name, in the operator's group), and
                    it is the one named by `status.pipelineId` and the `goldrush.dev/pipeline-id` annotation
I2 no orphans       an object deleted with policy `Delete` leaves no remote pipeline with its name
I3 converged        remote config == desired config (the operator's own mapping of spec + current Secret
                    values), `observedGeneration == generation`, `Ready` matches the phase
I4 credentials      the remote secret fields hold the current Secret values (compared as `sha256:<hex>`,
                    the simulator's view), and `status.secrets` carries a hash for each referenced key
I5 no leaks         the canary never appears in operator logs, Events, the objects (status, annotations,
                    kopf's included), nor in any error message the simulator journal saw in a request
I6 no amplification committed remote writes per route == the writes the test intended
I7 no foreign writes pipelines the operator did not create or adopt are unchanged and never written to
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines import CANARY, condition

from goldrush_operator.payload import desired_payload
from goldrush_operator.resource import PipelineSpec
from goldrush_sim.model import hashed
from support.kubectl import Kubectl
from support.operator import OperatorProcess, wait_for
from support.sim import SimProcess

WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")
# Fields the simulator's admin view carries that the desired payload does not (or that change by themselves).
_CONFIG_FIELDS = (
    "name", "project", "description", "topic", "destination_type", "destination_config", "transforms",
    "execution_mode", "execution_start_from", "execution_stop_from", "abi_contract_addresses",
    "abi_unmatched", "status",
)
_FOREIGN_STABLE = (*_CONFIG_FIELDS, "updated_at", "group_id")


def committed_writes(sim: SimProcess, since: int = 0) -> Counter[str]:
    """Remote writes that changed something (2xx, including answers the fault injection dropped), by route."""
    return Counter(
        e["route"] for e in sim.journal(since)
        if e["method"] in WRITE_METHODS and 200 <= int(e["status"]) < 300
    )


def last_seq(sim: SimProcess) -> int:
    entries = sim.journal()
    return int(entries[-1]["seq"]) if entries else 0


@dataclass
class Invariants:
    kubectl: Kubectl
    sim: SimProcess
    canary: str = CANARY
    operators: list[OperatorProcess] = field(default_factory=list)
    foreign: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    group: str = "group_default"
    _secrets: dict[str, dict[str, str]] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------ set-up

    def watch(self, *operators: OperatorProcess) -> None:
        """Operator processes whose logs I5 scans (all of them, including crashed ones)."""
        self.operators.extend(operators)

    def seed_foreign(self, **fields: Any) -> dict[str, Any]:
        """A pipeline created out of band that the operator must never touch (I7)."""
        view = self.sim.seed(**fields)
        self.foreign[view["id"]] = view
        return view

    def mark_deleted(self, *names: str) -> None:
        self.deleted.update(names)

    # ------------------------------------------------------------------------------------------ helpers

    def objects(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kubectl.json("get", "goldrushpipelines")["items"]
        return items

    def _secret(self, name: str) -> dict[str, str] | None:
        if name in self._secrets:
            return self._secrets[name]
        proc = self.kubectl("get", "secret", name, "-o", "json", check=False)
        if proc.returncode != 0:
            return None
        data = json.loads(proc.stdout).get("data") or {}
        self._secrets[name] = {k: base64.b64decode(v).decode() for k, v in data.items()}
        return self._secrets[name]

    def desired(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The remote config this object should have now, secrets as the simulator shows them."""
        meta = obj["metadata"]
        spec = PipelineSpec.model_validate(obj["spec"])
        values: dict[str, str] = {}
        for fname, ref in (spec.destination.secret_refs or {}).items():
            data = self._secret(ref.name) or {}
            values[fname] = data.get(ref.key, "")
        payload = desired_payload(meta["namespace"], meta["name"], spec, values)
        result: dict[str, Any] = hashed(payload)
        return result

    def _problems(self, expect_stalled: Mapping[str, str]) -> list[str]:
        """Why the system is not converged yet (empty when I3 holds for every live object)."""
        problems: list[str] = []
        self._secrets.clear()
        remote = {p["id"]: p for p in self.sim.pipelines()}
        for obj in self.objects():
            name = obj["metadata"]["name"]
            if obj["metadata"].get("deletionTimestamp"):
                problems.append(f"{name}: still being deleted")
                continue
            status = obj.get("status") or {}
            if status.get("observedGeneration") != obj["metadata"]["generation"]:
                problems.append(f"{name}: observedGeneration {status.get('observedGeneration')}")
                continue
            if name in expect_stalled:
                stalled = condition(obj, "Stalled") or {}
                if (stalled.get("status"), stalled.get("reason")) != ("True", expect_stalled[name]):
                    problems.append(f"{name}: expected Stalled {expect_stalled[name]}, got {stalled}")
                continue
            ready = condition(obj, "Ready") or {}
            phase = status.get("phase")
            want_phase = "PAUSED" if obj["spec"].get("paused") else "RUNNING"
            if phase != want_phase or ready.get("status") != "True":
                problems.append(f"{name}: phase {phase}, Ready {ready.get('status')} {ready.get('reason')}")
                continue
            if condition(obj, "Stalled") or condition(obj, "Reconciling"):
                problems.append(f"{name}: Stalled/Reconciling present while Ready")
                continue
            pid = status.get("pipelineId")
            if pid not in remote:
                problems.append(f"{name}: status.pipelineId {pid} is not a remote pipeline")
                continue
            want = self.desired(obj)
            have = remote[pid]
            diff = sorted(k for k in _CONFIG_FIELDS if k in want and want[k] != have.get(k))
            if diff:
                problems.append(f"{name}: remote differs in {diff}")
        return problems

    # ------------------------------------------------------------------------------------------ the check

    def check(
        self,
        *,
        writes: Mapping[str, int] | None = None,
        expect_stalled: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        quiet: float = 2.0,
        since: int = 0,
    ) -> dict[str, Any]:
        """Wait for convergence (I3), then assert I1-I7. `writes`: the intended committed writes per route
        since journal sequence `since` (I6); `expect_stalled`: object name -> Stalled reason (such objects
        must have no remote pipeline unless they had one before)."""
        stalled = dict(expect_stalled or {})
        seen: list[list[str]] = [[]]

        def converged() -> bool:
            seen[0] = self._problems(stalled)
            return not seen[0]

        try:
            wait_for(converged, timeout, interval=0.5, message="convergence (I3)")
        except AssertionError:
            raise AssertionError(f"I3 not converged after {timeout}s: {seen[0]}") from None

        # Quiet: nothing is written while in sync (part of I6).
        seq = last_seq(self.sim)
        time.sleep(quiet)
        late = [e for e in self.sim.journal(seq) if e["method"] in WRITE_METHODS]
        assert not late, f"I6: writes while in sync: {[(e['method'], e['path'], e['status']) for e in late]}"

        objects = self.objects()
        remote = self.sim.pipelines()
        ours = [p for p in remote if p["id"] not in self.foreign]

        # I1 no duplicates / I3 ids recorded consistently.
        by_name: dict[str, list[str]] = {}
        for p in ours:
            if p["group_id"] == self.group:
                by_name.setdefault(p["name"], []).append(p["id"])
        for obj in objects:
            name = obj["metadata"]["name"]
            status = obj.get("status") or {}
            want_name = self.desired(obj)["name"]
            ids = by_name.get(want_name, [])
            if name in stalled and not status.get("pipelineId"):
                assert ids == [], f"I1: stalled {name} has remote pipelines {ids}"
                continue
            assert ids == [status.get("pipelineId")], f"I1: {name} -> remote {ids}, status {status.get('pipelineId')}"
            annotation = obj["metadata"].get("annotations", {}).get("goldrush.dev/pipeline-id")
            assert annotation == status["pipelineId"], f"I1: {name} annotation {annotation}"
            assert "goldrush.dev/create-pending" not in obj["metadata"].get("annotations", {}), name

        # I2 no orphans.
        for name in self.deleted:
            want_name = f"{self.kubectl.namespace}-{name}"
            left = [p["id"] for p in ours if p["name"] == want_name]
            assert not left, f"I2: deleted {name} left remote pipelines {left}"

        # I4 credentials current (the remote holds the hash of the current value; status has keyed hashes).
        remote_by_id = {p["id"]: p for p in remote}
        for obj in objects:
            status = obj.get("status") or {}
            pid = status.get("pipelineId")
            if not pid or obj["metadata"]["name"] in stalled:
                continue
            want = self.desired(obj)["destination_config"]
            have = remote_by_id[pid]["destination_config"]
            for fname in (obj["spec"]["destination"].get("secretRefs") or {}):
                head, *rest = fname.split(".")
                w, h = want.get(head), have.get(head)
                for part in rest:
                    w, h = (w or {}).get(part), (h or {}).get(part)
                assert w == h and str(h).startswith("sha256:"), f"I4: {obj['metadata']['name']} {fname}"
            refs = obj["spec"]["destination"].get("secretRefs") or {}
            entries = status.get("secrets") or []
            assert len(entries) == len(refs), f"I4: status.secrets {entries}"
            for entry in entries:
                assert set(entry) >= {"name", "key", "hash"} and self.canary not in entry["hash"]

        # I5 no leaks.
        self.assert_no_leak()

        # I6 no amplification.
        counts = committed_writes(self.sim, since)
        if writes is not None:
            expected = Counter({k: v for k, v in writes.items() if v})
            assert counts == expected, f"I6: committed writes {dict(counts)}, intended {dict(expected)}"

        # I7 no foreign writes.
        for fid, before in self.foreign.items():
            now = remote_by_id.get(fid)
            assert now is not None, f"I7: foreign pipeline {fid} was deleted"
            changed = [k for k in _FOREIGN_STABLE if before.get(k) != now.get(k)]
            assert not changed, f"I7: foreign pipeline {fid} changed: {changed}"
            touched = [e for e in self.sim.journal() if e["method"] in WRITE_METHODS and fid in e["path"]]
            assert not touched, f"I7: writes to foreign pipeline {fid}: {touched}"
        return {"objects": objects, "remote": remote, "writes": counts}

    def assert_no_leak(self, extra: Iterable[str] = ()) -> None:
        """I5: the canary is in no operator log, Event, object (status, annotations) or API error text."""
        texts = {
            "objects": self.kubectl("get", "goldrushpipelines", "-o", "yaml").stdout,
            "events": self.kubectl("get", "events", "-o", "yaml").stdout,
        }
        for i, op in enumerate(self.operators):
            texts[f"operator log {i}"] = op.log
        for i, text in enumerate(extra):
            texts[f"extra {i}"] = text
        journal = self.sim.journal()
        texts["journal"] = repr(journal)
        for where, text in texts.items():
            assert self.canary not in text, f"I5: canary leaked into {where}"


def start_debug(start_operator: Any, inv: Invariants, **kwargs: Any) -> OperatorProcess:
    """Start an operator with debug logging (`--verbose`) whose log I5 scans."""
    env = {"GOLDRUSH_LOG_LEVEL": "DEBUG", **kwargs.pop("env", {})}
    proc: OperatorProcess = start_operator(env=env, args=["--verbose", *kwargs.pop("args", [])], **kwargs)
    inv.watch(proc)
    return proc
