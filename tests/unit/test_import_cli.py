"""Unit tests of the command-line side of import and of the kubectl plugin: progress output (terminal and
not), filters, and how `kubectl-goldrush` hands kubectl's global flags and its sub-commands to `cli.main`."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from goldrush_operator import cli, kube, kubectl_plugin
from goldrush_operator.goldrush_api import Pagination
from goldrush_operator.import_command import Progress, matches


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_without_a_terminal_prints_a_line_every_few_seconds() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, tty=False, clock=clock, every=2.0)
    progress.page(Pagination(page_number=1, page_size=100, total_count=250, has_more=True))
    for _ in range(100):
        progress.item()
        clock.now += 0.05  # 5 s in all
    progress.finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == "listing pipelines: 1/250"
    assert 2 <= len(lines) - 1 <= 4  # one line about every 2 s, not one per item
    assert all(line.startswith("listing pipelines: ") and line.endswith("/250") for line in lines[:-1])
    assert lines[-1] == "listed 100 pipelines"
    assert "\r" not in out.getvalue()


def test_progress_on_a_terminal_redraws_a_bar() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, tty=True, clock=clock)
    progress.page(Pagination(page_number=1, total_count=4, has_more=True))
    for _ in range(2):
        progress.item()
        clock.now += 1
    progress.page(Pagination(page_number=2, total_count=4, has_more=False))
    for _ in range(2):
        progress.item()
        clock.now += 1
    progress.finish()
    text = out.getvalue()
    frames = text.split("\r")[1:]
    assert frames[0] == "listing pipelines [" + "#" * 7 + "." * 23 + "] 1/4"
    assert frames[-1] == "listing pipelines [" + "#" * 30 + "] 4/4\n"
    assert text.count("\n") == 1


def test_progress_quiet_and_without_a_total() -> None:
    out = io.StringIO()
    quiet = Progress(out, tty=True, quiet=True)
    quiet.item()
    quiet.finish()
    assert out.getvalue() == ""
    plain = Progress(out, tty=False)
    plain.page(None)
    plain.item()
    plain.finish()
    assert out.getvalue() == "listing pipelines: 1\nlisted 1 pipelines\n"


def test_filters() -> None:
    remote = {"name": "prod-swaps", "project": "analytics"}
    assert matches(remote, [], [])
    assert matches(remote, ["analytics", "x"], ["prod-*"])
    assert not matches(remote, ["other"], [])
    assert not matches(remote, [], ["Prod-*"])  # case-sensitive, like the API's names
    assert matches(remote, [], ["dev-*", "*swaps"])


# ------------------------------------------------------------------------------------------ kubectl plugin


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []

    def fake_main(argv: list[str]) -> int:
        seen.append((argv, kube.selection.kubeconfig, kube.selection.context, kube.selection.namespace))
        return 7

    monkeypatch.setattr(cli, "main", fake_main)
    monkeypatch.setattr(cli, "commands", lambda: ("run", "crd", "logs", "describe", "import"))
    monkeypatch.setattr(kube, "selection", kube.Selection())
    return seen


def test_plugin_hands_subcommands_and_kubectl_flags_to_the_cli(calls: list[Any]) -> None:
    assert kubectl_plugin.main(["describe", "p1", "-n", "team-a", "--context", "prod"]) == 7
    assert kubectl_plugin.main(["--kubeconfig", "/k", "import", "--name", "prod-*", "--project", "p", "-o", "d"]) == 7
    assert kubectl_plugin.main(["-n", "x", "logs", "p2"]) == 7
    assert calls == [
        (["describe", "p1"], None, "prod", "team-a"),
        (["import", "--name", "prod-*", "--project", "p", "-o", "d"], "/k", None, None),
        (["logs", "p2"], None, None, "x"),
    ]


def test_plugin_offers_only_what_the_cli_knows(calls: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert kubectl_plugin.main(["plan", "-f", "x.yaml"]) == 2  # not in this cli (fake_main not called)
    assert "unknown command 'plan'" in capsys.readouterr().err
    assert kubectl_plugin.main(["run"]) == 2  # the operator itself is not a plugin command
    assert kubectl_plugin.main([]) == 0
    usage = capsys.readouterr().out
    assert "import" in usage and "describe" in usage and "logs" in usage and "plan" not in usage
    assert calls == []


def test_plugin_offers_plan_once_the_cli_has_it(calls: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "commands", lambda: ("run", "import", "plan", "describe", "logs"))
    assert kubectl_plugin.main(["plan", "-f", "-", "--context", "c"]) == 7
    assert calls == [(["plan", "-f", "-"], None, "c", None)]


def test_the_real_cli_has_import_describe_and_logs() -> None:
    assert {"import", "describe", "logs"} <= set(cli.commands())


def test_selected_namespace_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube, "selection", kube.Selection(namespace="chosen"))
    assert kube.current_namespace() == "chosen"


def test_selected_context_namespace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: a, context: {cluster: c, user: u, namespace: ns-a}},"
        " {name: b, context: {cluster: c, user: u, namespace: ns-b}}]\n"
    )
    monkeypatch.setattr(kube, "selection", kube.Selection(kubeconfig=str(config)))
    assert kube.current_namespace() == "ns-a"
    monkeypatch.setattr(kube, "selection", kube.Selection(kubeconfig=str(config), context="b"))
    assert kube.current_namespace() == "ns-b"


def test_krew_manifest_matches_the_console_script() -> None:
    root = Path(__file__).resolve().parents[2]
    manifest = yaml.safe_load((root / "deploy" / "krew" / "goldrush.yaml").read_text())
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert manifest["kind"] == "Plugin" and manifest["metadata"]["name"] == "goldrush"
    assert manifest["spec"]["version"] == f"v{project['version']}"
    script = project["scripts"]["kubectl-goldrush"]
    assert script == "goldrush_operator.kubectl_plugin:main"
    for platform in manifest["spec"]["platforms"]:
        assert platform["bin"] == "kubectl-goldrush"
        assert {f["from"] for f in platform["files"]} == {"kubectl-goldrush", "LICENSE"}
    launcher = root / "deploy" / "krew" / "kubectl-goldrush"
    assert "-m goldrush_operator.kubectl_plugin" in launcher.read_text()
    assert launcher.stat().st_mode & 0o111


def test_progress_on_a_terminal_without_a_total_counts() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, tty=True, clock=clock)
    progress.page(Pagination(page_number=1, has_more=False))
    progress.item()
    clock.now += 1
    progress.finish()
    assert out.getvalue() == "\rlisting pipelines: 1\rlisting pipelines: 1\n"
