"""HTTP scoring service for the sentiment model: `python -m service`.

Layout: config.py (Settings, from the environment), schemas.py (request/response models),
errors.py (the one error shape), body.py (reading and checking request bodies), batching.py
(the generic dynamic batcher), inference.py (decode -> predict -> encode for one checkpoint),
runtime.py (loading, warm-up, readiness, draining), metrics.py, logs.py, middleware.py,
routes.py, main.py (`create_app`), __main__.py (uvicorn, signals), client.py (typed client).
"""
