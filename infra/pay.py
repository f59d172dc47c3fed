"""`python -m infra.pay SESSION_ID`: under `make dev`, "the customer pays" a session's waiting payment.

The Midtrans stand-in started by `make dev` (infra/dev.py) marks the session's latest pending
order settled and sends its signed notification to the dev server, exactly as Midtrans would;
this prints what the notification function answered.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("BESTIE_DATA_DIR", REPO / ".data"))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m infra.pay SESSION_ID", file=sys.stderr)
        return 2
    try:
        session_id = str(uuid.UUID(argv[0]))
    except ValueError:
        print(f"not a session id: {argv[0]!r}", file=sys.stderr)
        return 2
    marker = DATA / "midtrans-standin.url"
    if not marker.exists():
        print("no Midtrans stand-in: start `make dev` (without PAYMENT_PROVIDER set)", file=sys.stderr)
        return 1
    resp = requests.post(f"{marker.read_text().strip()}/_standin/pay/{session_id}", timeout=60)
    print(resp.text)
    return 0 if resp.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
