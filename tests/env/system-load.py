#!/usr/bin/env python3
"""`make bench-system`: load on the running system of `make demo`.

Posts N orders to the order-service from C keep-alive HTTP clients, then
waits until the payment-service has charged every one of them, and prints
how fast each stage went (order-service -> MariaDB -> replica ->
binlog-tailer -> Kafka -> payment-service -> MariaDB):

- order-service: orders accepted (201) per second while posting;
- binlog-tailer: when its /metrics counted the last of the N events
  published (binlog_tailer_events_published_total), and the rate from the
  first post to then;
- payment-service: when the last order was paid (rows in payments.payments),
  the end-to-end rate from the first post, and how long after the tailer's
  last event.

Usage: system-load.py [N] [C] [--pause-payments]

--pause-payments stops the payment-service (SIGSTOP, by the PID `make demo`
wrote) while the orders are posted and published, then resumes it (SIGCONT)
and times how fast it drains that backlog of N events alone: the
payment-service's own rate, which the pipeline otherwise hides behind the
slower stages before it. Keep N small enough that posting and publishing
take less than the consumer's session timeout (45 s).
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
PAUSE_PAYMENTS = "--pause-payments" in sys.argv[1:]
N = int(ARGS[0]) if len(ARGS) > 0 else 4000
C = int(ARGS[1]) if len(ARGS) > 1 else 8
ORDERS_PORT = int(os.environ.get("BT_ORDER_SERVICE_PORT", "18080"))
TAILER_PORT = int(os.environ.get("BT_TAILER_HTTP_PORT", "9187"))
PRIMARY_PORT = os.environ.get("BT_PRIMARY_PORT", "13306")
ADMIN = os.environ.get("BT_ADMIN_USER", "admin")
ADMIN_PASSWORD = os.environ.get("BT_ADMIN_PASSWORD", "admin-local")
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STATE = os.environ.get("BT_STATE_DIR") or os.path.join(
    REPO, "target", "services", os.environ.get("BT_MARIADB", "10.11"))
POLL = 0.05


def paid():
    out = subprocess.check_output(
        ["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{PRIMARY_PORT}", f"-u{ADMIN}",
         f"-p{ADMIN_PASSWORD}", "-N", "-e", "SELECT COUNT(*) FROM payments.payments"])
    return int(out.strip())


def published():
    """binlog_tailer_events_published_total over every topic, or None."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", TAILER_PORT, timeout=5)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
    except OSError:
        return None
    total = None
    for line in body.splitlines():
        if line.startswith("binlog_tailer_events_published_total"):
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


def payment_service_pid():
    try:
        with open(os.path.join(STATE, "payment-service", "pid")) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def wait_for(what, done, timeout):
    """Polls `done()` until true; returns the time it first was."""
    deadline = time.time() + timeout
    while not done():
        if time.time() > deadline:
            sys.exit(f"{what}: not within {timeout} s")
        time.sleep(POLL)
    return time.time()


def rate(n, seconds):
    return f"{n / seconds:.0f}/s" if seconds > 0 else "-"


def main():
    before_paid = paid()
    before_published = published()
    pid = payment_service_pid() if PAUSE_PAYMENTS else None
    if PAUSE_PAYMENTS and pid is None:
        sys.exit(f"--pause-payments: no running payment-service PID in {STATE}/payment-service/pid")
    errors = []

    failures = []

    def client(k):
        # A minimal keep-alive HTTP/1.1 client over one socket: http.client
        # parses every response's headers with the email package, which made
        # this script one of the busiest processes on a 2-core machine.
        try:
            sock = socket.create_connection(("127.0.0.1", ORDERS_PORT), timeout=30)
            buf = b""

            def read_more():
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the order-service closed the connection")
                return chunk

            for i in range(N // C):
                body = json.dumps({"customer_id": k + 1, "amount": "12.34", "currency": "EUR",
                                   "items": [{"sku": f"load-{k}-{i}", "qty": 1}]}).encode()
                sock.sendall(b"POST /orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                while b"\r\n\r\n" not in buf:
                    buf += read_more()
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.split(b"\r\n")
                status = int(lines[0].split()[1])
                length = None
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length is None:
                    raise ValueError(f"a response without Content-Length: {head!r}")
                while len(buf) < length:
                    buf += read_more()
                buf = buf[length:]
                if status != 201:
                    errors.append(status)
            sock.close()
        except (OSError, ValueError) as e:
            # A thread cannot end the script; main() does, after the join.
            failures.append(f"client {k}: {e}")

    total = (N // C) * C
    if pid is not None:
        os.kill(pid, signal.SIGSTOP)
    try:
        # The tailer's counter, sampled while the clients post.
        tailer_done = {}

        def watch_tailer():
            if before_published is None:
                return
            deadline = time.time() + 300
            while time.time() < deadline:
                now = published()
                if now is not None and now - before_published >= total - len(errors):
                    tailer_done["at"] = time.time()
                    return
                time.sleep(POLL)

        # A daemon, so that a failed run does not wait out its deadline.
        watcher = threading.Thread(target=watch_tailer, daemon=True)
        started = time.time()
        watcher.start()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(C)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            sys.exit("posting failed: " + "; ".join(failures))
        posted = time.time()
        accepted = total - len(errors)
        watcher.join()
        resumed = None
        if pid is not None:
            resumed = time.time()
            os.kill(pid, signal.SIGCONT)
            pid = None
        done = wait_for(f"{accepted} orders paid", lambda: paid() >= before_paid + accepted, 300)
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGCONT)

    print(f"{total} orders from {C} clients, {len(errors)} refused:")
    print(f"  order-service    accepted in {posted - started:.2f} s "
          f"({rate(accepted, posted - started)})")
    published_at = tailer_done.get("at")
    if published_at is not None:
        print(f"  binlog-tailer    all {accepted} events published {published_at - started:.2f} s "
              f"after the first post ({rate(accepted, published_at - started)}; the last one "
              f"{published_at - posted:.2f} s after the last 201)")
    else:
        print(f"  binlog-tailer    (127.0.0.1:{TAILER_PORT}/metrics did not count {accepted} more "
              f"binlog_tailer_events_published_total)")
    if resumed is not None:
        print(f"  payment-service  paused until then; drained the backlog of {accepted} events in "
              f"{done - resumed:.2f} s ({rate(accepted, done - resumed)}, its own rate)")
    else:
        after = f"; the last payment {done - published_at:.2f} s after the tailer's last event" \
            if published_at is not None else ""
        print(f"  payment-service  all paid {done - started:.2f} s after the first post "
              f"({rate(accepted, done - started)} end to end; the last payment "
              f"{done - posted:.2f} s after the last 201{after})")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
