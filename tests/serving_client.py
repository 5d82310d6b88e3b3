"""A client that sends ``POST /predict`` requests without pause, from its own process, and
writes one JSON line per response: send and receive times, status, the instance the header
named, the instance the body named, and the predictions.

    python serving_client.py URL ROWS.json OUT.jsonl STOP_FILE [MAX_SECONDS] [MAX_REQUESTS]

It stops when STOP_FILE exists, or after MAX_SECONDS (default 300) or MAX_REQUESTS (default
200000), whichever comes first. A request that fails to connect is recorded as status 0.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

HEADER = "X-Flowpolicy-Instance"


def main(argv: list[str]) -> int:
    url, rows_file, out_file, stop_file = argv[:4]
    max_seconds = float(argv[4]) if len(argv) > 4 else 300.0
    max_requests = int(argv[5]) if len(argv) > 5 else 200_000
    body = json.dumps({"rows": json.loads(Path(rows_file).read_text())}).encode()
    target = urlsplit(url)
    stop = Path(stop_file)
    deadline = time.monotonic() + max_seconds
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    with open(out_file, "w", encoding="utf-8") as out:
        for number in range(max_requests):
            if time.monotonic() > deadline or (number % 20 == 0 and stop.exists()):
                break
            sent = time.time()
            try:
                connection.request("POST", "/predict", body,
                                   {"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = json.loads(response.read())
                record = {"sent": sent, "received": time.time(), "status": response.status,
                          "header": response.getheader(HEADER),
                          "instance": payload.get("instance"),
                          "predictions": payload.get("predictions"),
                          "error": payload.get("error")}
            except (OSError, http.client.HTTPException, ValueError) as exc:
                connection.close()
                connection = http.client.HTTPConnection(target.hostname, target.port,
                                                        timeout=30)
                record = {"sent": sent, "received": time.time(), "status": 0,
                          "error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(record) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
