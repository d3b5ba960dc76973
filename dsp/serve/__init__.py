"""`dsp serve`: a trained policy in front of an LLM, behind an OpenAI-compatible HTTP endpoint.

batcher.py  micro-batching: hints asked for together share one policy forward pass
metrics.py  the Prometheus text of /metrics
app.py      the FastAPI app: routes, OpenAI error shapes, the bearer token, streaming, the request log
server.py   runs the app under uvicorn with an open LLM client (the embedded LLM when no endpoint is set)
"""
