"""`python -m mockprovider`: serve the fake provider until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from mockprovider import serve


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="mockprovider",
        description="the fake OpenAI/Azure/Anthropic/Gemini/Bedrock/Vertex upstream",
    )
    parser.add_argument("--port", type=int, default=18080, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--key-file",
        action="append",
        default=[],
        metavar="PATH",
        help="accept only the provider keys in these files (default: any key)",
    )
    args = parser.parse_args()
    keys = [Path(path).read_text(encoding="utf-8").strip() for path in args.key_file]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, keys))


if __name__ == "__main__":
    main()
