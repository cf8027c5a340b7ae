"""The controller: one reconcile pass per object along the managed-resource contract.

`loop.Controller.run_pass` (called by the scheduler's workers) and `loop.Controller.delete` (called by the
kopf deletion handler) are the entry points. A pass reads its inputs (`inputs`), observes and changes the
remote pipeline (`external`), lets `outcome.classify` turn any failure into a retry or a stall, and writes
status through `status`, the only status writer. `ports` names what the controller needs from outside.
"""
