"""One run per line: while 64 clients on 127.0.0.1 send 8 logins each with unknown user ids,
the correct login of the benchmark admin from 127.0.0.2 is timed.

usage: python3 login_flood.py URL RUNS (standard library only)
"""

import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

CLIENTS, EACH = 64, 8


def login(connection, user, password):
    body = json.dumps({"id": user, "password": password})
    connection.request("POST", "/v1.0alpha/token", body)
    answer = connection.getresponse()
    answer.read()
    return answer.status


def main():
    url = urllib.parse.urlparse(sys.argv[1])
    runs = int(sys.argv[2])
    took = []
    for run in range(runs):
        statuses = []

        def flood(client):
            connection = http.client.HTTPConnection(url.hostname, url.port)
            for k in range(EACH):
                statuses.append(login(connection, f"nobody{run}x{client}x{k}", "wrong password"))

        threads = [threading.Thread(target=flood, args=(i,)) for i in range(CLIENTS)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        elsewhere = http.client.HTTPConnection(url.hostname, url.port, source_address=("127.0.0.2", 0))
        asked = time.monotonic()
        status = login(elsewhere, "bench", "benchmark")
        took.append(time.monotonic() - asked)
        answered = len(statuses)
        for thread in threads:
            thread.join()
        print(
            f"run {run + 1}: the login from 127.0.0.2 answered {status} after {took[-1]:.3f} s, "
            f"when {answered} of {CLIENTS * EACH} flood logins had been answered "
            f"(the flood took {time.monotonic() - began:.1f} s; its answers: {sorted(set(statuses))})"
        )
    print(f"median: {statistics.median(took):.3f} s")


if __name__ == "__main__":
    main()
