"""The test server as its own process (benchmarks use it so that it does not share their GIL)."""

import json
import subprocess
import sys
import time
import urllib.request

from dsp.llm.client import AsyncLLMClient
from dsp.llm.types import LLMConfig, LLMRequest


def test_server_process_answers_after_its_latency_and_counts_requests():
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsp.llm.testserver", "--latency", "0.2"], stdout=subprocess.PIPE, text=True
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")

        async def calls():
            client = AsyncLLMClient(LLMConfig(base_url=url, model="m", concurrency=4))
            t0 = time.perf_counter()
            out = await client.complete_many(
                [LLMRequest(prompt=f"Text: {i}\nKeywords: k{i}\nSummary:") for i in range(4)]
            )
            await client.aclose()
            return out, time.perf_counter() - t0

        import asyncio

        out, wall = asyncio.run(calls())
        assert [r.text for r in out] == [f"k{i}" for i in range(4)]
        assert wall >= 0.2  # the latency is served; max_inflight below says the four ran at once
        with urllib.request.urlopen(url + "/_stats") as r:
            stats = json.load(r)
        assert stats == {"requests": 4, "max_inflight": 4}
    finally:
        proc.kill()
        proc.wait()
