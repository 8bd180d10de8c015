#!/usr/bin/env python3
"""`make bench-system`: load on the running system of `make demo`.

Posts N orders to the order-service from C keep-alive HTTP clients, then
waits until the payment-service has charged every one of them, and prints
how fast orders were accepted and how fast they were paid end to end
(order-service -> MariaDB -> replica -> binlog-tailer -> Kafka ->
payment-service -> MariaDB). Usage: system-load.py [N] [C].
"""
import http.client
import json
import os
import subprocess
import sys
import threading
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
C = int(sys.argv[2]) if len(sys.argv) > 2 else 8
ORDERS_PORT = int(os.environ.get("BT_ORDER_SERVICE_PORT", "18080"))
PRIMARY_PORT = os.environ.get("BT_PRIMARY_PORT", "13306")
ADMIN = os.environ.get("BT_ADMIN_USER", "admin")
ADMIN_PASSWORD = os.environ.get("BT_ADMIN_PASSWORD", "admin-local")


def paid():
    out = subprocess.check_output(
        ["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{PRIMARY_PORT}", f"-u{ADMIN}",
         f"-p{ADMIN_PASSWORD}", "-N", "-e", "SELECT COUNT(*) FROM payments.payments"])
    return int(out.strip())


def main():
    before = paid()
    errors = []

    def client(k):
        conn = http.client.HTTPConnection("127.0.0.1", ORDERS_PORT, timeout=30)
        for i in range(N // C):
            body = json.dumps({"customer_id": k + 1, "amount": "12.34", "currency": "EUR",
                               "items": [{"sku": f"load-{k}-{i}", "qty": 1}]})
            conn.request("POST", "/orders", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 201:
                errors.append(response.status)

    started = time.time()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(C)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    posted = time.time()
    total = (N // C) * C
    deadline = posted + 300
    while paid() < before + total - len(errors):
        if time.time() > deadline:
            sys.exit(f"only {paid() - before} of {total} orders paid 300 s after the last post")
        time.sleep(0.05)
    done = time.time()
    print(f"{total} orders from {C} clients: accepted in {posted - started:.2f} s "
          f"({total / (posted - started):.0f} orders/s), {len(errors)} refused; all paid "
          f"{done - started:.2f} s after the first post ({total / (done - started):.0f} orders/s "
          f"end to end; the last payment {done - posted:.2f} s after the last 201)")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
