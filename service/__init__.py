"""HTTP scoring service for the sentiment model: `python -m service`.

Rooms, each importing only the ones after it (docs/architecture.md):
- server/  processes and sockets: launch (uvicorn, signals, supervisor), workers, http_guard;
- app/     the HTTP app: factory (`create_app`), routes, request_body, middleware, page;
- runtime/ serving a model: runtime, batching, contract, sentiment_model (the checkpoint
  adapter), metrics.
Shared by all of them: config.py (Settings), errors.py (the one error shape), schemas.py (the
request and response models), logs.py. client.py is the typed client for callers.
"""
