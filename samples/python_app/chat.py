"""A small device app on astroedge.runtime: continue each prompt, keeping one conversation state.

    python samples/python_app/chat.py build/shakespeare.aepkg "ROMEO:" "JULIET:"
    echo "ROMEO:" | python samples/python_app/chat.py build/shakespeare.aepkg

Prompts come from the arguments, else one per line from stdin. The stream is NOT reset between
prompts: each reply continues the conversation so far, in constant memory (AM-SNet carries a
fixed-size state, no KV cache). --state FILE resumes from and saves to a state file.
Needs only numpy, onnxruntime and libastroedge (no torch); state files are libastroedge's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from astroedge.errors import UserError
from astroedge.runtime import Engine


def prompts(args: list[str]) -> Iterator[str]:
    if args:
        yield from args
        return
    for line in sys.stdin:
        if line.strip():
            yield line.rstrip("\n") + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path, help="model package (*.aepkg)")
    ap.add_argument("prompt", nargs="*", help="prompts (default: read lines from stdin)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | tensorrt | jetson")
    ap.add_argument("--max-new-tokens", type=int, default=120)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-k", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stop", default="\n\n", help="end a reply at this text (default: a blank line)")
    ap.add_argument("--state", type=Path, help="resume from this state file if it exists, save to it at the end")
    a = ap.parse_intermixed_args()  # prompts may follow the options
    try:
        engine = Engine(a.package, device=a.device)
        stream = engine.create_stream()
        if a.state and a.state.exists():
            stream.load_state(a.state)
        for i, prompt in enumerate(prompts(a.prompt)):
            sys.stdout.write(f"> {prompt.rstrip()}\n")
            reply = stream.generate(prompt, a.max_new_tokens, a.temperature, a.top_k, seed=a.seed + i, stop=[a.stop])
            for _, piece in reply:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write(f"\n[{stream.position} tokens in the conversation, state {stream.state_bytes} bytes]\n")
        if a.state:
            stream.save_state(a.state)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
