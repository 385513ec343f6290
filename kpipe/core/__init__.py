"""The floor of kpipe: what every package may import, and which imports nothing else of kpipe.

Errors (:mod:`kpipe.core.errors`), settings read from the environment
(:mod:`kpipe.core.settings`), JSON logs, the one retry policy, the bearer-token
check, the bounded body reader, the one error-code-to-status table with the
one error body (:mod:`kpipe.core.http_status`) and telemetry.
"""
