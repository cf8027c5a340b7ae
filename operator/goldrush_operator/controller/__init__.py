"""The controller: one reconcile pass per object along the managed-resource contract.

`loop.Controller.run_pass` (called by the scheduler's workers) is the entry point; an object being deleted
that carries the operator's finalizer gets `finalize.Finalizer.run` as its pass. A pass reads its inputs
(`inputs`), creates or adopts the remote pipeline (`external`; `name_audit` checks the name of a create an
earlier process made just before it died or gave the object up), applies the configuration (`act`), observes
the runtime (`observe`), and writes status through `status`, the only status writer; `timing` says when the
object is due again, and every failure goes through `outcome.classify` and `failure`. `ports` names what the
controller needs from outside.
"""
