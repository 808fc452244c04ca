"""This app's local stack on top of the generic ``devhost``: `make run`, `make demo`, and what tests and bench share.

Azurite (``azurite``; on a run's preferred ports, else free ones: ``azurite_ports``), the sandbox wiring and the
app's environment (``environment.app_environment``), the app's queue-client factory for the host (``storage``), the
callback receiver (``callback_sink``), the whole `make run` stack (``local_run.LocalRun``, ``python -m
localrun``), its per-port state (``run_state``) and `make demo` (``python -m localrun.demo``). Never deployed
(.funcignore).
"""
