"""A minimal kopf operator used only by the e2e smoke test: marks every new Widget as seen in its status."""

from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="smoke.goldrush.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="smoke.goldrush.dev")
    settings.watching.server_timeout = 60
    settings.watching.inactivity_timeout = 120


@kopf.on.create("smoke.goldrush.dev", "v1", "widgets")
def on_create(spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
    patch.status["seen"] = True
    patch.status["size"] = spec.get("size")
