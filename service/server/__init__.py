"""Processes and sockets: `launch.main` (what `python -m service` runs) loads the checkpoint,
binds, and serves with uvicorn in this process or in forked workers (`workers.py`), with the
HTTP protocol guard (`http_guard.py`) in front of the app and draining on SIGTERM."""
