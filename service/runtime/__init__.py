"""Serving a model: the `Runtime` (load, warm-up, readiness, admission, drain), the generic
dynamic `Batcher`, the contract a served model keeps (`contract.py`), the adapter that makes a
checkpoint keep it (`sentiment_model.py`, the only module here that imports torch) and the
Prometheus metrics. Nothing here knows HTTP."""
