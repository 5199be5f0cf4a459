"""`mmlabel serve`: a trained tagger over HTTP (FastAPI + uvicorn, the `serve` extra), with dynamic batching of
concurrent requests and a page to try it; see docs/serving.md."""
