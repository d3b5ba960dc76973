"""Does llama.cpp's reuse of the previous prompt's cached prefix change greedy answers? No dsp client, no cache.

    python -m bench.prefix_reuse CACHE.sqlite N CACHE_PROMPT(0|1)

Takes N greedy hinted prompts from an RL run's LLM cache, starts the embedded LLM (set `DSP_EMBEDDED_SERVER`
for one slot), sends them one at a time in order and then in reverse order with llama.cpp's `cache_prompt`
request option as given, and counts the prompts whose two answers are identical. One at a time on one slot,
no two requests share a batch, so a difference can only come from the prefix each prompt found cached.
"""

import argparse
import json
import os
import random
import sqlite3

from openai import OpenAI

from dsp.llm.local import MODEL_ALIAS, local_llm_server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", help="an RL run's LLM cache (SQLite)")
    ap.add_argument("n", type=int, help="prompts to send")
    ap.add_argument("cache_prompt", choices=["0", "1"], help="llama.cpp's cache_prompt request option")
    args = ap.parse_args()
    cache, n, cache_prompt = args.cache, args.n, args.cache_prompt == "1"
    db = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    rows = [json.loads(r) for (r,) in db.execute("select request from answers order by key")]
    rows = [r for r in rows if "\nHint: " in (r.get("prompt") or "") and r.get("temperature") == 0]
    random.Random(1).shuffle(rows)
    rows = rows[:n]
    with local_llm_server() as server:
        client = OpenAI(base_url=server.base_url, api_key="unused")

        def answers(order):
            return {
                i: client.completions.create(
                    model=MODEL_ALIAS,
                    prompt=rows[i]["prompt"],
                    max_tokens=rows[i]["max_tokens"],
                    temperature=0,
                    stop=rows[i]["stop"] or None,
                    extra_body={"cache_prompt": cache_prompt},
                )
                .choices[0]
                .text
                for i in order
            }

        first = answers(range(len(rows)))
        second = answers(reversed(range(len(rows))))
    same = sum(first[i] == second[i] for i in first)
    print(
        f"cache_prompt={cache_prompt}, server {os.environ.get('DSP_EMBEDDED_SERVER', 'default')!r}: "
        f"identical answers {same}/{len(first)}"
    )


if __name__ == "__main__":
    main()
